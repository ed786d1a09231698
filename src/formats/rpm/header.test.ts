import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource } from '../byte-source.ts';
import { isWharfError } from '../../errors.ts';
import { readRpm, type RpmReadLimits } from './header.ts';
import { rpmPackageMetadata } from './package.ts';

const FIXTURES = new URL('../../../test/fixtures/rpm/', import.meta.url).pathname;
const archer = () => new Uint8Array(readFileSync(join(FIXTURES, 'Archer-3.4.5-6.x86_64.rpm')));

async function rejects(buf: Uint8Array, code: string, msg?: RegExp, limits?: RpmReadLimits): Promise<void> {
  await assert.rejects(readRpm(bufferSource(buf), limits), (e: unknown) => {
    assert.ok(isWharfError(e), `not a WharfError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (msg) assert.match(e.message, msg);
    return true;
  });
}

const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
/** Offsets of the main header in Archer (computed, not hard-coded). */
function layout(b: Uint8Array) {
  const v = dv(b);
  const sil = v.getUint32(104);
  const sdl = v.getUint32(108);
  const hs = 96 + 16 + 16 * sil + sdl + ((8 - (sdl % 8)) % 8);
  const il = v.getUint32(hs + 8);
  const dl = v.getUint32(hs + 12);
  const entry = (i: number) => hs + 16 + 16 * i;
  return { v, sil, sdl, hs, il, dl, entry, data: hs + 16 + 16 * il };
}

test('every fixture parses; ranges and raw bytes are consistent', async () => {
  for (const f of readdirSync(FIXTURES).filter((x) => x.endsWith('.rpm'))) {
    const buf = new Uint8Array(readFileSync(join(FIXTURES, f)));
    const r = await readRpm(bufferSource(buf));
    assert.equal(r.signatureRange.start, 96, f);
    assert.equal(r.signatureRange.end % 8, 0, f);
    assert.equal(r.headerRange.start, r.signatureRange.end, f);
    assert.equal(r.payloadOffset, r.headerRange.end, f);
    assert.deepEqual(r.header.raw, buf.subarray(r.headerRange.start, r.headerRange.end), f);
    assert.deepEqual([...r.signature.raw.subarray(0, 8)], [0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0], f);
    assert.equal(r.header.entries()[0]!.tag, 63, f);
    assert.equal(r.signature.entries()[0]!.tag, 62, f);
    assert.equal(typeof r.header.string(1000), 'string', f);
  }
  const r = await readRpm(bufferSource(archer()));
  assert.equal(r.header.string(1000), 'Archer');
  assert.equal(r.header.number(1003), 2);
  assert.ok(r.header.strings(1049)!.length > 1);
  assert.ok(r.header.numbers(1048)!.length > 1);
  assert.equal(r.header.has(99999), false);
  assert.equal(r.header.string(99999), undefined);
  assert.equal(r.signature.string(273)!.length, 64); // SHA256: hex STRING
  assert.throws(() => r.signature.binary(273), /not binary/); // wrong type is an error, not a silent misread
  assert.equal(r.signature.binary(1004)!.length, 16); // MD5: BIN
});

test('non-RPM input: RPM_NOT_RPM', async () => {
  await rejects(new Uint8Array(0), 'RPM_NOT_RPM');
  await rejects(new TextEncoder().encode('hello world, this is not a package at all'.repeat(5)), 'RPM_NOT_RPM');
  const deb = new TextEncoder().encode('!<arch>\ndebian-binary   1700000000  0     0     100644  4         `\n2.0\n');
  await rejects(deb, 'RPM_NOT_RPM');
});

test('truncated at any point: RPM_TRUNCATED', async () => {
  const buf = archer();
  const { hs, il, dl } = layout(buf);
  const end = hs + 16 + 16 * il + dl;
  const points = [4, 50, 95, 96, 100, 111, 112, 200, hs - 1, hs, hs + 8, hs + 15, hs + 16, hs + 100, end - 1];
  for (let p = 4; p < end; p += 97) points.push(p);
  for (const p of points) await rejects(buf.subarray(0, p), 'RPM_TRUNCATED', undefined);
  // the whole header present: fine even without payload
  await readRpm(bufferSource(buf.subarray(0, end)));
});

test('lead checks', async () => {
  const b = archer();
  b[4] = 2;
  await rejects(b, 'RPM_BAD_HEADER', /version 2/);
  const c = archer();
  c[79] = 1;
  await rejects(c, 'RPM_BAD_HEADER', /signature type/);
});

test('absurd il/dl counts: RPM_HEADER_TOO_LARGE before anything is read', async () => {
  const set = (off: number, v: number) => { const b = archer(); dv(b).setUint32(off, v); return b; };
  await rejects(set(104, 33), 'RPM_HEADER_TOO_LARGE', /33 index entries/);
  await rejects(set(108, 64 * 1024 * 1024 + 1), 'RPM_HEADER_TOO_LARGE');
  await rejects(set(104, 0xffffffff), 'RPM_HEADER_TOO_LARGE');
  const { hs } = layout(archer());
  await rejects(set(hs + 8, 0x10000), 'RPM_HEADER_TOO_LARGE');
  await rejects(set(hs + 12, 0x10000000), 'RPM_HEADER_TOO_LARGE');
  await rejects(set(hs + 12, 0xfffffff0), 'RPM_HEADER_TOO_LARGE');
  // configured limit smaller than the real header
  await rejects(archer(), 'RPM_HEADER_TOO_LARGE', /limit 1000/, { maxHeaderData: 1000 });
  await rejects(archer(), 'RPM_HEADER_TOO_LARGE', undefined, { maxHeaderEntries: 5 });
});

test('bad header magic', async () => {
  const b = archer();
  b[96 + 4] = 1; // reserved bytes must be zero
  await rejects(b, 'RPM_BAD_HEADER', /magic/);
  const c = archer();
  c[layout(c).hs] = 0;
  await rejects(c, 'RPM_BAD_HEADER', /main header.*magic/);
});

test('index entries are validated like rpm does', async () => {
  const base = archer();
  const { v: v0, il, dl, entry } = layout(base);
  const find = (type: number) => { for (let i = 1; i < il; i++) if (v0.getUint32(entry(i) + 4) === type) return i; throw new Error('none'); };
  const mut = (i: number, field: number, value: number) => { const b = archer(); dv(b).setUint32(entry(i) + 4 * field, value); return b; };
  await rejects(mut(3, 2, 90000), 'RPM_BAD_HEADER', new RegExp(`index entry 3 .*(offset 90000 beyond data size ${dl}|overlaps)`));
  // the last entry: nothing after it, so only the range check can catch it
  const lastOff = (dl + 8) & ~7;
  await rejects(mut(il - 1, 2, lastOff), 'RPM_BAD_HEADER', new RegExp(`offset ${lastOff} beyond data size ${dl}`));
  const i32 = find(4);
  await rejects(mut(i32, 2, v0.getUint32(entry(i32) + 8) + 1), 'RPM_BAD_HEADER', /not aligned to 4 bytes/);
  await rejects(mut(2, 1, 10), 'RPM_BAD_HEADER', /invalid type 10/);
  await rejects(mut(2, 0, 50), 'RPM_BAD_HEADER', /invalid tag number 50/);
  await rejects(mut(2, 3, 0), 'RPM_BAD_HEADER', /count 0 out of range/);
  await rejects(mut(i32, 3, 0x0fffffff), 'RPM_BAD_HEADER', /count/);
  await rejects(mut(il - 1, 3, 1000), 'RPM_BAD_HEADER'); // string array running off the data
  const str = find(6);
  await rejects(mut(str, 3, 2), 'RPM_BAD_HEADER', /STRING entry must have count 1/);
  // known tag with the wrong type (NAME as INT8)
  const nameIdx = [...Array(il).keys()].find((i) => v0.getUint32(entry(i)) === 1000)!;
  await rejects(mut(nameIdx, 1, 2), 'RPM_BAD_HEADER', /tag 1000 must have a string type/);
  // a string without NUL terminator inside the store
  const b = archer();
  const { data } = layout(b);
  const lastStr = [...Array(il).keys()].reverse().find((i) => [6, 8, 9].includes(v0.getUint32(entry(i) + 4)) && v0.getUint32(entry(i) + 8) + 64 > dl - 16);
  if (lastStr !== undefined) {
    b.fill(0x41, data + v0.getUint32(entry(lastStr) + 8), data + dl - 16);
    await rejects(b, 'RPM_BAD_HEADER');
  }
});

test('region tag violations', async () => {
  const { entry, data, dl } = layout(archer());
  const region = (f: (v: DataView) => void) => { const b = archer(); f(dv(b)); return b; };
  await rejects(region((v) => v.setUint32(entry(0) + 4, 6)), 'RPM_BAD_HEADER', /region tag 63 has type 6/);
  await rejects(region((v) => v.setUint32(entry(0) + 12, 15)), 'RPM_BAD_HEADER', /region tag/);
  await rejects(region((v) => v.setUint32(entry(0) + 8, dl)), 'RPM_BAD_HEADER', /trailer offset/);
  const trailer = data + dl - 16;
  await rejects(region((v) => v.setUint32(trailer, 62)), 'RPM_BAD_HEADER', /region trailer/);
  await rejects(region((v) => v.setInt32(trailer + 8, -16)), 'RPM_BAD_HEADER', /must cover the whole header/);
  await rejects(region((v) => v.setInt32(trailer + 8, -17)), 'RPM_BAD_HEADER', /region size/);
  // region tag of the wrong kind first: no region, and tag 62 is then an invalid tag
  await rejects(region((v) => v.setUint32(entry(0), 62)), 'RPM_BAD_HEADER', /invalid tag number 62/);
  // signature header region
  await rejects(region((v) => v.setUint32(96 + 16 + 4, 8)), 'RPM_BAD_HEADER', /signature header: region tag 62/);
});

test('control character in Summary: RPM_BAD_TEXT; Latin-1 text converted', async () => {
  const b = archer();
  const { hs } = layout(b);
  const hdr = Buffer.from(b.buffer, b.byteOffset + hs);
  const at = hdr.indexOf('Complex package.');
  assert.ok(at > 0);
  b[hs + at + 7] = 0x01;
  const r = await readRpm(bufferSource(b));
  assert.throws(() => rpmPackageMetadata(r), (e: unknown) => isWharfError(e) && e.code === 'RPM_BAD_TEXT' && /Summary/.test(e.message));
  // tab, newline and carriage return are fine
  b[hs + at + 7] = 0x09;
  assert.equal(rpmPackageMetadata(await readRpm(bufferSource(b))).summary, 'Complex\tpackage.');
  const l1 = rpmPackageMetadata(await readRpm(bufferSource(new Uint8Array(readFileSync(join(FIXTURES, 'balicek-iso88591-1.1.1-1.x86_64.rpm'))))));
  assert.equal(l1.summary, 'Balicek s "àáâãäåç"');
});
