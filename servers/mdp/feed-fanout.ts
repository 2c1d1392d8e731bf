/**
 * One group's update of a tick, UTF-8 encoded once for every client: the envelope up to its `seq`
 * and from just after it (`seq` is per client and subscription, the rest is shared).
 */
export interface UpdateParts {
  head: Buffer;
  tail: Buffer;
}

/** Encodes the shared parts of `{"type":"update","channel":…,"seq":N,"ts":…,"data":…}`. */
export function encodeUpdateParts(channel: string, ts: number, data: string): UpdateParts {
  return {
    head: Buffer.from(`{"type":"update","channel":${JSON.stringify(channel)},"seq":`),
    tail: Buffer.from(`,"ts":${ts},"data":${data}}`),
  };
}

const FIN_TEXT = 0x81;
const DIGIT_0 = 0x30;

const decimalDigits = (n: number): number => {
  let digits = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) digits++;
  return digits;
};

/** A client's frames of one tick: the bytes to write, in order, and their total length. */
export interface ClientFrames {
  chunks: Buffer[];
  bytes: number;
}

/**
 * The first `count` updates (`parts[i]` with `seqs[i]`, a whole number ≥ 0) as unmasked WebSocket
 * text frames (RFC 6455 §5.2, what a server sends), for one write of a client's whole tick. Only
 * each frame's start (header, envelope head, seq) is the client's own, in one small buffer; the
 * rest of the envelope, the board rows, is the tick's shared `tail`, written as is. Copying every
 * client's rows into a buffer of its own cost a large fan-out about as much again in memory
 * traffic and garbage collection as the writes themselves.
 */
export function frameUpdates(
  parts: readonly UpdateParts[],
  seqs: readonly number[],
  count: number,
): ClientFrames {
  let headBytes = 0;
  for (let i = 0; i < count; i++) headBytes += 10 + parts[i]!.head.length + 16;
  const heads = Buffer.allocUnsafe(headBytes);
  const chunks: Buffer[] = [];
  let bytes = 0;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const { head, tail } = parts[i]!;
    const seq = seqs[i]!;
    const digits = decimalDigits(seq);
    const payload = head.length + digits + tail.length;
    const begin = at;
    heads[at++] = FIN_TEXT;
    if (payload < 126) heads[at++] = payload;
    else if (payload < 65_536) {
      heads[at++] = 126;
      at = heads.writeUInt16BE(payload, at);
    } else {
      heads[at++] = 127;
      at = heads.writeUInt32BE(Math.floor(payload / 2 ** 32), at);
      at = heads.writeUInt32BE(payload >>> 0, at);
    }
    heads.set(head, at);
    at += head.length;
    for (let k = at + digits - 1, rest = seq; k >= at; k--, rest = Math.floor(rest / 10))
      heads[k] = DIGIT_0 + (rest % 10);
    at += digits;
    chunks.push(heads.subarray(begin, at), tail);
    bytes += at - begin + tail.length;
  }
  return { chunks, bytes };
}
