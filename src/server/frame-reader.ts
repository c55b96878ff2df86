// The stream's common frames read straight from their bytes: `{"t":"pick"|"report","items":[…]}` whose
// items are maps of the known pick and report fields with scalar values, as a gateway's client sends
// them. msgpackr reads any msgpack, so for these frames it spends most of its time on what they never
// hold; this reader takes only that common shape and gives up on anything else (another key, a nested,
// binary or extension value, a string that is not ASCII, bytes that do not parse), and msgpackr then
// reads the frame as before. So it decides no error and no edge case itself:
// a frame it reads yields the objects msgpackr would make (test/server-frame-reader.test.ts checks it
// on any frame), for the codec's field checks to judge as they judge msgpackr's.

/** Every field a pick or a report item may carry (src/server/codec.ts reads them). */
const FIELDS = [
  "model",
  "prompt",
  "inputTokens",
  "sloLevel",
  "slo_level",
  "sloTtftMs",
  "sloTpotMs",
  "requestId",
  "maxTokens",
  "max_tokens",
  "prefixHit",
  "priority",
  "seed",
  "explain",
  "ok",
  "ttftMs",
  "tpotMs",
  "outputTokens",
  "decode",
] as const;

type Field = (typeof FIELDS)[number];
type ReadItem = Partial<Record<Field, unknown>>;

/**
 * A key's bytes as big-endian 32-bit words at `offsets`, compared a word at a time: the last word ends
 * at the key's last byte (overlapping the one before), and a key shorter than a word is compared byte
 * by byte. Among the fields, a key's length and last word tell it from every other.
 */
class Key {
  readonly bytes: Uint8Array;
  readonly length: number;
  readonly offsets: number[];
  readonly words: number[];
  /** The last word (0 for a key shorter than a word). */
  readonly last: number;

  constructor(text: string) {
    this.bytes = new TextEncoder().encode(text);
    const view = new DataView(this.bytes.buffer);
    const n = (this.length = this.bytes.length);
    this.offsets = Array.from({ length: n < 4 ? 0 : Math.ceil(n / 4) }, (_, k) => Math.min(4 * k, n - 4));
    this.words = this.offsets.map((at) => view.getUint32(at));
    this.last = n < 4 ? 0 : view.getUint32(n - 4);
  }
}

/** The fields' keys by length in bytes, with each key's index in FIELDS. */
const BY_LENGTH: { key: Key; index: number }[][] = [];
FIELDS.forEach((name, index) => (BY_LENGTH[name.length] ??= []).push({ key: new Key(name), index }));
for (const keys of BY_LENGTH.filter(Boolean)) {
  if (new Set(keys.map((k) => k.key.last)).size !== keys.length) throw new Error("frame-reader: two fields share a length and last word");
}

/** The frame's keys and the values of t. */
const T = new Key("t");
const ITEMS = new Key("items");
const PICK = new Key("pick");
const REPORT = new Key("report");

/** Strings up to this long are built a character at a time; longer ones by the Buffer's latin1 decoder. */
const SHORT_STRING = 24;

/** Thrown inside the reader when it gives up; caught at its top. */
const GIVE_UP = Symbol("give up");

class Reader {
  private at = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get done(): boolean {
    return this.at === this.bytes.length;
  }

  private byte(): number {
    if (this.at >= this.bytes.length) throw GIVE_UP;
    return this.bytes[this.at++];
  }

  /** `n` bytes from here: their start, past which the position moves. */
  private skip(n: number): number {
    const start = this.at;
    if (start + n > this.bytes.length) throw GIVE_UP;
    this.at = start + n;
    return start;
  }

  private u16(): number {
    return this.view.getUint16(this.skip(2));
  }

  private u32(): number {
    return this.view.getUint32(this.skip(4));
  }

  /** A map header's entry count. */
  mapLength(): number {
    return this.count(0x80, 0xde);
  }

  /** An array header's element count. */
  arrayLength(): number {
    return this.count(0x90, 0xdc);
  }

  /** A count in its fixed form (the tag's high nibble, then 4 bits), 16-bit (`tag16`) or 32-bit (`tag16 + 1`). */
  private count(fixTag: number, tag16: number): number {
    const b = this.byte();
    if ((b & 0xf0) === fixTag) return b & 0x0f;
    if (b === tag16) return this.u16();
    if (b === tag16 + 1) return this.u32();
    throw GIVE_UP;
  }

  /** A string header's byte length. */
  private stringLength(b: number): number {
    if ((b & 0xe0) === 0xa0) return b & 0x1f;
    if (b === 0xd9) return this.byte();
    if (b === 0xda) return this.u16();
    if (b === 0xdb) return this.u32();
    return -1;
  }

  /** Where the last string read by str() starts, and its length in bytes. */
  strStart = 0;
  strLength = 0;

  /** Reads a string's header and skips its bytes (strStart, strLength). */
  str(): void {
    const length = this.stringLength(this.byte());
    if (length < 0) throw GIVE_UP;
    this.strStart = this.skip(length);
    this.strLength = length;
  }

  /** Whether the last string read is `key`. */
  strIs(key: Key): boolean {
    const length = this.strLength;
    if (length !== key.length) return false;
    const start = this.strStart;
    if (length < 4) {
      for (let i = 0; i < length; i++) if (this.bytes[start + i] !== key.bytes[i]) return false;
      return true;
    }
    const { offsets, words } = key;
    for (let k = 0; k < words.length; k++) if (this.view.getUint32(start + offsets[k]) !== words[k]) return false;
    return true;
  }

  /** The index in FIELDS of the known field a key names: found by its length and last word, then checked whole. */
  field(): number {
    this.str();
    const candidates = BY_LENGTH[this.strLength];
    if (candidates === undefined) throw GIVE_UP;
    const last = this.strLength < 4 ? 0 : this.view.getUint32(this.strStart + this.strLength - 4);
    for (let c = 0; c < candidates.length; c++) {
      const { key, index } = candidates[c];
      if (key.last === last) {
        if (this.strIs(key)) return index;
        break;
      }
    }
    throw GIVE_UP;
  }

  /**
   * A scalar as msgpackr reads it: nil, a boolean, a number or an ASCII string. 64-bit integers, which
   * Go's common encoder writes for every int, as codec.ts's Unpackr reads them (int64AsType "number":
   * the high word times 2^32 plus the low one, the same double), and float32 as it is.
   */
  scalar(): unknown {
    const b = this.byte();
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    switch (b) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xcc:
        return this.byte();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xd0:
        return this.view.getInt8(this.skip(1));
      case 0xd1:
        return this.view.getInt16(this.skip(2));
      case 0xd2:
        return this.view.getInt32(this.skip(4));
      case 0xcf: {
        const at = this.skip(8);
        return this.view.getUint32(at) * 0x100000000 + this.view.getUint32(at + 4);
      }
      case 0xd3: {
        const at = this.skip(8);
        return this.view.getInt32(at) * 0x100000000 + this.view.getUint32(at + 4);
      }
      case 0xca:
        return this.view.getFloat32(this.skip(4));
      case 0xcb:
        return this.view.getFloat64(this.skip(8));
    }
    const length = this.stringLength(b);
    if (length < 0) throw GIVE_UP;
    return this.ascii(this.skip(length), length);
  }

  private ascii(start: number, length: number): string {
    const bytes = this.bytes;
    if (length <= SHORT_STRING) {
      let s = "";
      for (let i = start; i < start + length; i++) {
        const c = bytes[i];
        if (c >= 0x80) throw GIVE_UP;
        s += String.fromCharCode(c);
      }
      return s;
    }
    for (let i = start; i < start + length; i++) if (bytes[i] >= 0x80) throw GIVE_UP;
    return Buffer.from(bytes.buffer, bytes.byteOffset + start, length).toString("latin1");
  }
}

/**
 * Stores a field's value by name on an object of the fields given alone, as msgpackr's are: items of
 * one shape share a hidden class, and the codec's checks of absent fields stay cheap (with all
 * nineteen fields preset, a pick item's checks took about 1.5 times as long). Cases in FIELDS' order,
 * checked below.
 */
function put(item: ReadItem, index: number, v: unknown): void {
  switch (index) {
    case 0:
      item.model = v;
      return;
    case 1:
      item.prompt = v;
      return;
    case 2:
      item.inputTokens = v;
      return;
    case 3:
      item.sloLevel = v;
      return;
    case 4:
      item.slo_level = v;
      return;
    case 5:
      item.sloTtftMs = v;
      return;
    case 6:
      item.sloTpotMs = v;
      return;
    case 7:
      item.requestId = v;
      return;
    case 8:
      item.maxTokens = v;
      return;
    case 9:
      item.max_tokens = v;
      return;
    case 10:
      item.prefixHit = v;
      return;
    case 11:
      item.priority = v;
      return;
    case 12:
      item.seed = v;
      return;
    case 13:
      item.explain = v;
      return;
    case 14:
      item.ok = v;
      return;
    case 15:
      item.ttftMs = v;
      return;
    case 16:
      item.tpotMs = v;
      return;
    case 17:
      item.outputTokens = v;
      return;
    default:
      item.decode = v;
  }
}
FIELDS.forEach((name, index) => {
  const item: ReadItem = {};
  put(item, index, true);
  if (item[name] !== true) throw new Error(`frame-reader: put() stores field ${index} as another than ${name}`);
});

/**
 * A frame of the common shape, with the items msgpackr would read (a later duplicate key wins, as
 * there); undefined for anything else, which msgpackr must read. Gives up rather than throws.
 */
export function readFrame(bytes: Uint8Array): { t: "pick" | "report"; items: ReadItem[] } | undefined {
  const r = new Reader(bytes);
  try {
    let t: "pick" | "report" | undefined;
    let items: ReadItem[] | undefined;
    for (let n = r.mapLength(); n > 0; n--) {
      r.str();
      if (r.strIs(T)) {
        r.str();
        if (r.strIs(PICK)) t = "pick";
        else if (r.strIs(REPORT)) t = "report";
        else throw GIVE_UP;
      } else if (r.strIs(ITEMS)) items = readItems(r);
      else throw GIVE_UP;
    }
    return t !== undefined && items !== undefined && r.done ? { t, items } : undefined;
  } catch (err) {
    if (err === GIVE_UP) return undefined;
    throw err;
  }
}

function readItems(r: Reader): ReadItem[] {
  const count = r.arrayLength();
  // A count beyond what the bytes could hold is not allocated: every item takes at least one byte.
  const items: ReadItem[] = [];
  for (let i = 0; i < count; i++) {
    const item: ReadItem = {};
    for (let n = r.mapLength(); n > 0; n--) {
      const index = r.field();
      put(item, index, r.scalar());
    }
    items.push(item);
  }
  return items;
}
