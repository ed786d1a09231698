// Reader for the ar(1) archives a .deb is made of (dpkg lib/dpkg/ar.c; apt apt-pkg/contrib/arfile.cc).
import { WharfError } from '../../errors.ts';
import type { ByteSource } from '../byte-source.ts';

export interface ArMember {
  /** Member name with the space padding and an optional trailing '/' removed. */
  name: string;
  /** Offset of the member data in the source. */
  offset: number;
  /** Size of the member data in bytes. */
  size: number;
}

export const AR_MAGIC = '!<arch>\n';
const HEADER_SIZE = 60;
const latin1 = new TextDecoder('latin1');

function field(h: Uint8Array, start: number, len: number): string {
  return latin1.decode(h.subarray(start, start + len));
}

/** Lists the members of an ar archive, validating the structure up to the end of the source. */
export async function listArMembers(src: ByteSource): Promise<ArMember[]> {
  if (src.size < AR_MAGIC.length) {
    if (src.size === 0) throw new WharfError('DEB_NOT_AR', ['the file is empty']);
    const head = field(await src.read(0, src.size), 0, src.size);
    if (AR_MAGIC.startsWith(head)) throw new WharfError('DEB_TRUNCATED', ['the ar signature is incomplete']);
    throw new WharfError('DEB_NOT_AR', ['missing the ar signature "!<arch>"']);
  }
  const magic = field(await src.read(0, AR_MAGIC.length), 0, AR_MAGIC.length);
  if (magic !== AR_MAGIC) throw new WharfError('DEB_NOT_AR', ['missing the ar signature "!<arch>"']);

  const members: ArMember[] = [];
  let pos = AR_MAGIC.length;
  while (pos < src.size) {
    const index = members.length;
    if (src.size - pos < HEADER_SIZE) {
      throw new WharfError('DEB_TRUNCATED', [`member header #${index + 1} at offset ${pos} is incomplete`]);
    }
    const h = await src.read(pos, HEADER_SIZE);
    if (h[58] !== 0x60 || h[59] !== 0x0a) {
      throw new WharfError('DEB_BAD_MEMBER', [`member header #${index + 1} at offset ${pos} lacks the "\`\\n" terminator`]);
    }
    const rawName = field(h, 0, 16);
    const sizeText = field(h, 48, 10);
    const sm = /^([0-9]+) *$/.exec(sizeText);
    if (!sm) throw new WharfError('DEB_BAD_MEMBER', [`member header #${index + 1} has an invalid size field "${sizeText.trimEnd()}"`]);
    let size = Number(sm[1]);
    let offset = pos + HEADER_SIZE;
    const storedSize = size;
    let name: string;
    const bsd = /^#1\/([0-9]+) *$/.exec(rawName);
    if (bsd) {
      // BSD long name: the name is stored at the start of the member data and counted in its size.
      const nameLen = Number(bsd[1]);
      if (nameLen > size) throw new WharfError('DEB_BAD_MEMBER', [`member #${index + 1} has a BSD name longer than the member`]);
      if (nameLen > 4096) throw new WharfError('DEB_BAD_MEMBER', [`member #${index + 1} has an over-long BSD name`]);
      if (offset + nameLen > src.size) throw new WharfError('DEB_TRUNCATED', [`member #${index + 1} name extends past the end of the file`]);
      name = field(await src.read(offset, nameLen), 0, nameLen).replace(/\0+$/, '');
      offset += nameLen;
      size -= nameLen;
    } else {
      if (!/^[^ ]*[ ]*$/.test(rawName) || /[\0-\x1f\x7f-\xff]/.test(rawName)) {
        throw new WharfError('DEB_BAD_MEMBER', [`member header #${index + 1} has an invalid name`]);
      }
      name = rawName.trimEnd();
      if (name.endsWith('/') && name !== '/' && name !== '//') name = name.slice(0, -1);
    }
    if (name.length === 0 || /[\0-\x1f\x7f]/.test(name)) {
      throw new WharfError('DEB_BAD_MEMBER', [`member header #${index + 1} has an invalid name`]);
    }
    if (offset + size > src.size) {
      throw new WharfError('DEB_TRUNCATED', [`member "${name}" needs ${storedSize} bytes but the file ends ${src.size - (pos + HEADER_SIZE)} bytes after its header`]);
    }
    members.push({ name, offset, size });
    pos = pos + HEADER_SIZE + storedSize;
    // Odd-sized members are followed by one padding byte; tolerate its absence only at the very end of the file.
    if (storedSize % 2 === 1 && pos < src.size) pos += 1;
  }
  return members;
}
