// The common subset of IoT Hub's query language over device twins: SELECT * FROM devices [WHERE condition],
// where a condition compares a twin field (deviceId, status, connectionState, tags.x, properties.desired.x,
// properties.reported.x, ...) with a literal (= != <> < <= > >=, IN [...]), combined with AND, OR, NOT and
// parentheses. Anything else is refused with a clear message rather than answered wrongly.

export class DeviceQueryError extends Error {
  override readonly name = "DeviceQueryError";
}

type Literal = string | number | boolean | null;
type Comparison = "=" | "!=" | "<" | "<=" | ">" | ">=";

type Condition =
  | { kind: "compare"; path: string[]; op: Comparison; value: Literal }
  | { kind: "in"; path: string[]; values: Literal[] }
  | { kind: "and" | "or"; left: Condition; right: Condition }
  | { kind: "not"; operand: Condition };

export interface DeviceQuery {
  /** True when the twin document matches the WHERE clause (always, without one). */
  matches(twin: Record<string, unknown>): boolean;
}

type Token =
  | { type: "word"; text: string }
  | { type: "string"; text: string }
  | { type: "number"; value: number }
  | { type: "symbol"; text: string };

const SYMBOLS = ["<=", ">=", "!=", "<>", "=", "<", ">", "(", ")", "[", "]", ",", "*"];

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < text.length) {
    const char = text[at];
    if (/\s/.test(char)) {
      at++;
      continue;
    }
    if (char === "'" || char === '"') {
      let value = "";
      at++;
      for (;;) {
        if (at >= text.length) throw new DeviceQueryError("unterminated string literal");
        if (text[at] === char) {
          // A doubled quote stands for itself.
          if (text[at + 1] === char) {
            value += char;
            at += 2;
            continue;
          }
          at++;
          break;
        }
        value += text[at];
        at++;
      }
      tokens.push({ type: "string", text: value });
      continue;
    }
    const number = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(at));
    if (number) {
      tokens.push({ type: "number", value: Number(number[0]) });
      at += number[0].length;
      continue;
    }
    const word = /^[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$-]*)*/.exec(text.slice(at));
    if (word) {
      tokens.push({ type: "word", text: word[0] });
      at += word[0].length;
      continue;
    }
    const symbol = SYMBOLS.find((candidate) => text.startsWith(candidate, at));
    if (!symbol) throw new DeviceQueryError(`unexpected character ${JSON.stringify(char)}`);
    tokens.push({ type: "symbol", text: symbol });
    at += symbol.length;
  }
  return tokens;
}

class Parser {
  private at = 0;

  constructor(private readonly tokens: Token[]) {}

  parse(): Condition | undefined {
    this.expectWord("SELECT");
    this.expectSymbol("*");
    this.expectWord("FROM");
    const from = this.next();
    if (from?.type !== "word" || from.text.toLowerCase() !== "devices") {
      throw new DeviceQueryError("only SELECT * FROM devices is supported");
    }
    let condition: Condition | undefined;
    if (this.peekWord("WHERE")) {
      this.at++;
      condition = this.parseOr();
    }
    if (this.at < this.tokens.length) throw new DeviceQueryError("unexpected text after the query");
    return condition;
  }

  private parseOr(): Condition {
    let left = this.parseAnd();
    while (this.peekWord("OR")) {
      this.at++;
      left = { kind: "or", left, right: this.parseAnd() };
    }
    return left;
  }

  private parseAnd(): Condition {
    let left = this.parseUnary();
    while (this.peekWord("AND")) {
      this.at++;
      left = { kind: "and", left, right: this.parseUnary() };
    }
    return left;
  }

  private parseUnary(): Condition {
    if (this.peekWord("NOT")) {
      this.at++;
      return { kind: "not", operand: this.parseUnary() };
    }
    const token = this.tokens[this.at];
    if (token?.type === "symbol" && token.text === "(") {
      this.at++;
      const inner = this.parseOr();
      this.expectSymbol(")");
      return inner;
    }
    return this.parseComparison();
  }

  private parseComparison(): Condition {
    const field = this.next();
    if (field?.type !== "word") throw new DeviceQueryError("expected a field name");
    const path = field.text.split(".");
    if (this.peekWord("IN")) {
      this.at++;
      this.expectSymbol("[");
      const values: Literal[] = [this.literal()];
      while (
        this.tokens[this.at]?.type === "symbol" &&
        (this.tokens[this.at] as { text: string }).text === ","
      ) {
        this.at++;
        values.push(this.literal());
      }
      this.expectSymbol("]");
      return { kind: "in", path, values };
    }
    const op = this.next();
    if (op?.type !== "symbol" || !["=", "!=", "<>", "<", "<=", ">", ">="].includes(op.text)) {
      throw new DeviceQueryError(`expected a comparison after ${field.text}`);
    }
    return {
      kind: "compare",
      path,
      op: (op.text === "<>" ? "!=" : op.text) as Comparison,
      value: this.literal(),
    };
  }

  private literal(): Literal {
    const token = this.next();
    if (token?.type === "string") return token.text;
    if (token?.type === "number") return token.value;
    if (token?.type === "word") {
      const lower = token.text.toLowerCase();
      if (lower === "true") return true;
      if (lower === "false") return false;
      if (lower === "null") return null;
    }
    throw new DeviceQueryError("expected a string, number, true, false or null");
  }

  private next(): Token | undefined {
    return this.tokens[this.at++];
  }

  private peekWord(word: string): boolean {
    const token = this.tokens[this.at];
    return token?.type === "word" && token.text.toUpperCase() === word;
  }

  private expectWord(word: string): void {
    if (!this.peekWord(word)) throw new DeviceQueryError(`expected ${word}`);
    this.at++;
  }

  private expectSymbol(symbol: string): void {
    const token = this.next();
    if (token?.type !== "symbol" || token.text !== symbol) throw new DeviceQueryError(`expected ${symbol}`);
  }
}

function valueAt(document: Record<string, unknown>, path: string[]): unknown {
  let current: unknown = document;
  for (const name of path) {
    if (typeof current !== "object" || current === null || Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[name];
  }
  return current;
}

/** Compares like the query language: same-typed values only; a missing field matches nothing. */
function compare(actual: unknown, op: Comparison, expected: Literal): boolean {
  if (actual === undefined) return false;
  if (expected === null || actual === null) {
    if (op === "=") return actual === expected;
    if (op === "!=") return actual !== expected;
    return false;
  }
  // Values of different types are not comparable: neither equal nor unequal.
  if (typeof actual !== typeof expected || typeof actual === "object") return false;
  const a = actual as string | number | boolean;
  switch (op) {
    case "=":
      return a === expected;
    case "!=":
      return a !== expected;
    case "<":
      return a < expected;
    case "<=":
      return a <= expected;
    case ">":
      return a > expected;
    case ">=":
      return a >= expected;
  }
}

function evaluate(condition: Condition, twin: Record<string, unknown>): boolean {
  switch (condition.kind) {
    case "compare":
      return compare(valueAt(twin, condition.path), condition.op, condition.value);
    case "in":
      return condition.values.some((value) => compare(valueAt(twin, condition.path), "=", value));
    case "and":
      return evaluate(condition.left, twin) && evaluate(condition.right, twin);
    case "or":
      return evaluate(condition.left, twin) || evaluate(condition.right, twin);
    case "not":
      return !evaluate(condition.operand, twin);
  }
}

/** Parses a query; throws DeviceQueryError for what the subset does not cover. */
export function parseDeviceQuery(text: string): DeviceQuery {
  const condition = new Parser(tokenize(text)).parse();
  return { matches: (twin) => (condition ? evaluate(condition, twin) : true) };
}
