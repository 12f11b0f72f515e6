/**
 * The page reads an image's size from its header before decoding anything (so that oversized
 * images and non-images are refused up front): checked on real files of every supported format.
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { readImageHeader } from '../src/image';

const WIDTH = 37;
const HEIGHT = 23;

function source(alpha = false): sharp.Sharp {
  return sharp({ create: { width: WIDTH, height: HEIGHT, channels: alpha ? 4 : 3, background: { r: 200, g: 90, b: 40, alpha: 0.5 } } });
}

/** A 24-bit BMP, written by hand (sharp does not write BMP); `topDown` stores a negative height. */
function bmp(topDown: boolean): Uint8Array {
  const row = Math.ceil((WIDTH * 3) / 4) * 4;
  const buf = Buffer.alloc(54 + row * HEIGHT);
  buf.write('BM', 0, 'ascii');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(54, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(WIDTH, 18);
  buf.writeInt32LE(topDown ? -HEIGHT : HEIGHT, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(24, 28);
  return new Uint8Array(buf);
}

describe('readImageHeader', () => {
  it.each([
    ['PNG', () => source().png().toBuffer()],
    ['JPEG', () => source().jpeg().toBuffer()],
    ['JPEG', () => source().jpeg().withMetadata({ exif: { IFD0: { ImageDescription: 'x'.repeat(2000) } } }).toBuffer()],
    ['GIF', () => source().gif().toBuffer()],
    ['WebP', () => source().webp({ lossless: false }).toBuffer()],
    ['WebP', () => source().webp({ lossless: true }).toBuffer()],
    ['WebP', () => source(true).webp({ lossless: false }).toBuffer()],
    ['BMP', async () => bmp(false)],
    ['BMP', async () => bmp(true)],
  ] as const)('reads %s dimensions', async (format, encode) => {
    expect(readImageHeader(new Uint8Array(await encode()))).toEqual({ format, width: WIDTH, height: HEIGHT });
  });

  it('returns null for what it cannot read', async () => {
    const png = new Uint8Array(await source().png().toBuffer());
    for (const bytes of [new TextEncoder().encode('just some text'), new Uint8Array(0), png.subarray(0, 20), Uint8Array.from([0xff, 0xd8, 0x00, 0x01, 0, 0, 0, 0, 0, 0])]) {
      expect(readImageHeader(bytes)).toBeNull();
    }
  });
});
