import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderRelease, releaseDate } from './release.ts';

const GOLDEN = join(import.meta.dirname, '../../../test/fixtures/release/Release');

test('Release matches the golden file', () => {
  const text = renderRelease({
    origin: 'acme/tools',
    label: 'acme/tools',
    suite: 'bookworm',
    codename: 'bookworm',
    date: 1795352168,
    architectures: ['amd64', 'arm64'],
    components: ['main'],
    description: 'acme/tools debian bookworm',
    files: [
      { path: 'main/binary-arm64/Packages', size: 0, md5: 'd41d8cd98f00b204e9800998ecf8427e', sha1: 'da39a3ee5e6b4b0d3255bfef95601890afd80709', sha256: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', sha512: 'cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e' },
      { path: 'main/binary-amd64/Packages', size: 544, md5: '4f803929edd435e6f9871a06deb1d077', sha1: '883e9dc42185e1833c3b947a5c653ba24c937336', sha256: '794ccb3aa236e83cfd31e51799c75e26e210704cfd75d3629f5966413ad9ed69', sha512: '0e87696635d76580c9fa60d35f092c0087659f5adae014827d5651f638fd67e63330aa82be8fe66afe9ebd26d5ef62dc6301af877606f2d3cabc5e0cf7e14385' },
    ],
  });
  if (process.env.WHARF_UPDATE_GOLDEN) writeFileSync(GOLDEN, text);
  assert.equal(text, readFileSync(GOLDEN, 'utf8'));
});

test('dates are RFC 1123 in UTC, as apt parses them', () => {
  assert.equal(releaseDate(0), 'Thu, 01 Jan 1970 00:00:00 UTC');
});

test('multi-line values are refused', () => {
  assert.throws(() =>
    renderRelease({ origin: 'a\nSHA256:', label: 'x', suite: 's', codename: 'c', date: 0, architectures: [], components: [], files: [] }),
  );
});
