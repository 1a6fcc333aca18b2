// Watches the bytes a client sends on an AMQP connection and says when they stop looking like AMQP frames
// small enough for DPS. rhea buffers whatever frame size a peer announces, so a frame "of 4 GB" would hold
// the connection (and memory) forever; DPS frames are a few kilobytes.
// AMQP 1.0 §2.2 (protocol header "AMQP" id major minor revision), §2.3.1 (frame: u32 size including itself).

const HEADER_BYTES = 8;
const MAGIC = 0x414d5150; // "AMQP"
const MIN_FRAME_BYTES = 8;

export class AmqpFrameGuard {
  private skip = 0;
  private pending = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** False once the stream announced a frame that is too large or malformed. */
  feed(chunk: Buffer): boolean {
    let data = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    for (;;) {
      if (this.skip >= data.length) {
        this.skip -= data.length;
        return true;
      }
      data = data.subarray(this.skip);
      this.skip = 0;
      if (data.length < 4) {
        this.pending = Buffer.from(data);
        return true;
      }
      const word = data.readUInt32BE(0);
      if (word === MAGIC) {
        // A protocol header: at the start, and again after SASL. (No legal frame is 0x414D5150 bytes long.)
        this.skip = HEADER_BYTES;
      } else if (word < MIN_FRAME_BYTES || word > this.maxFrameBytes) {
        return false;
      } else {
        this.skip = word;
      }
    }
  }
}
