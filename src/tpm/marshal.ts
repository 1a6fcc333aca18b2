// Big-endian TPM 2.0 marshalling (Part 1 §9: all integers big-endian, TPM2B = u16 size || bytes).
import { TpmError } from "./errors.js";

export class TpmWriter {
  private readonly chunks: Buffer[] = [];

  u8(value: number): this {
    this.chunks.push(Buffer.from([value & 0xff]));
    return this;
  }

  u16(value: number): this {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(value);
    this.chunks.push(b);
    return this;
  }

  u32(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value >>> 0);
    this.chunks.push(b);
    return this;
  }

  bytes(data: Buffer): this {
    this.chunks.push(data);
    return this;
  }

  /** A TPM2B: u16 size followed by the bytes. */
  sized(data: Buffer): this {
    if (data.length > 0xffff) throw new RangeError(`TPM2B too long: ${data.length} bytes`);
    return this.u16(data.length).bytes(data);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Reads a TPM response; any read past the end is a protocol error, never an out-of-range crash. */
export class TpmReader {
  private offset = 0;

  constructor(
    private readonly buffer: Buffer,
    private readonly what = "TPM data",
  ) {}

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  private take(length: number): Buffer {
    if (length < 0 || this.offset + length > this.buffer.length) {
      throw new TpmError(
        "TPM_PROTOCOL",
        `${this.what} is truncated (wanted ${length} bytes at ${this.offset})`,
      );
    }
    const slice = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }

  u8(): number {
    return this.take(1).readUInt8(0);
  }

  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  u32(): number {
    return this.take(4).readUInt32BE(0);
  }

  bytes(length: number): Buffer {
    return Buffer.from(this.take(length));
  }

  /** The contents of a TPM2B (without its size prefix). */
  sized(): Buffer {
    return this.bytes(this.u16());
  }

  /** A whole TPM2B, size prefix included (as the SDK passes EK/SRK publics around). */
  sizedWithPrefix(): Buffer {
    const length = this.u16();
    this.offset -= 2;
    return this.bytes(length + 2);
  }

  rest(): Buffer {
    return this.bytes(this.remaining);
  }
}

export function sized(data: Buffer): Buffer {
  return new TpmWriter().sized(data).toBuffer();
}
