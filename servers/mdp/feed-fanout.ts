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

const headerBytes = (payload: number): number => (payload < 126 ? 2 : payload < 65_536 ? 4 : 10);

/**
 * The first `count` updates (`parts[i]` with `seqs[i]`, a whole number ≥ 0) as unmasked WebSocket
 * text frames (RFC 6455 §5.2, what a server sends), back to back in one buffer: one write for a
 * client's whole tick. A large fan-out spent most of its own (user) time per message in ws's
 * per-send framing and in encoding each client's copy of the JSON to UTF-8; here each client costs
 * a few copies of shared bytes.
 */
export function frameUpdates(
  parts: readonly UpdateParts[],
  seqs: readonly number[],
  count: number,
): Buffer {
  let size = 0;
  for (let i = 0; i < count; i++) {
    const part = parts[i]!;
    const payload = part.head.length + decimalDigits(seqs[i]!) + part.tail.length;
    size += headerBytes(payload) + payload;
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const { head, tail } = parts[i]!;
    const seq = seqs[i]!;
    const digits = decimalDigits(seq);
    const payload = head.length + digits + tail.length;
    out[at++] = FIN_TEXT;
    if (payload < 126) out[at++] = payload;
    else if (payload < 65_536) {
      out[at++] = 126;
      at = out.writeUInt16BE(payload, at);
    } else {
      out[at++] = 127;
      at = out.writeUInt32BE(Math.floor(payload / 2 ** 32), at);
      at = out.writeUInt32BE(payload >>> 0, at);
    }
    out.set(head, at);
    at += head.length;
    for (let k = at + digits - 1, rest = seq; k >= at; k--, rest = Math.floor(rest / 10))
      out[k] = DIGIT_0 + (rest % 10);
    at += digits;
    out.set(tail, at);
    at += tail.length;
  }
  return out;
}
