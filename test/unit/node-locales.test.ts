// The message catalogs and help texts: every language has every key (and no other), the same placeholders,
// a help text for every node type; every key the editor and the adapters use exists.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(__dirname, "..", "..");
const locales = join(root, "nodes", "locales");
const LANGUAGES = ["en-US", "de", "ja"];
const TRANSLATIONS = LANGUAGES.filter((language) => language !== "en-US");
const nodeSets = readdirSync(join(root, "nodes"))
  .filter((file) => file.endsWith(".html"))
  .map((file) => file.slice(0, -".html".length))
  .sort();

type Catalog = Record<string, unknown>;

const catalogOf = (language: string, nodeSet: string): Catalog =>
  JSON.parse(readFileSync(join(locales, language, `${nodeSet}.json`), "utf8")) as Catalog;

/** "a.b.c" -> text for every leaf of a catalog. */
function flatten(catalog: Catalog, prefix = ""): Map<string, string> {
  const leaves = new Map<string, string>();
  for (const [key, value] of Object.entries(catalog)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (typeof value === "string") leaves.set(path, value);
    else for (const [leaf, text] of flatten(value as Catalog, path)) leaves.set(leaf, text);
  }
  return leaves;
}

const placeholders = (text: string): string[] => [...text.matchAll(/__(\w+)__/g)].map((m) => m[1]).sort();

/** The registered type of a node set: the file name keeps the old prefix, the type is provisio-azure-*. */
const typeOf = (nodeSet: string): string => nodeSet.replace(/^azure-iot-/, "provisio-azure-");

describe("message catalogs", () => {
  it("exist for the thirteen node sets in every language, and nothing else is there", () => {
    assert.equal(nodeSets.length, 13);
    const expected = nodeSets.flatMap((set) => [`${set}.html`, `${set}.json`]).sort();
    for (const language of LANGUAGES) {
      assert.deepEqual(readdirSync(join(locales, language)).sort(), expected, language);
    }
  });

  for (const language of TRANSLATIONS) {
    it(`${language} has exactly the en-US keys, with the same placeholders, and no empty text`, () => {
      for (const nodeSet of nodeSets) {
        const english = flatten(catalogOf("en-US", nodeSet));
        const translated = flatten(catalogOf(language, nodeSet));
        assert.deepEqual([...translated.keys()].sort(), [...english.keys()].sort(), `${language}/${nodeSet}`);
        for (const [key, text] of english) {
          const translation = translated.get(key) ?? "";
          assert.ok(translation.trim(), `${language}/${nodeSet}: ${key} is empty`);
          assert.deepEqual(placeholders(translation), placeholders(text), `${language}/${nodeSet}: ${key}`);
        }
      }
    });
  }

  it("has every key the editor uses (data-i18n, this._ and node._ in nodes/*.html)", () => {
    for (const nodeSet of nodeSets) {
      const html = readFileSync(join(root, "nodes", `${nodeSet}.html`), "utf8");
      const used = [
        ...[...html.matchAll(/data-i18n="(?:\[[a-z]+\])?([^"]+)"/g)].map((m) => m[1]),
        ...[...html.matchAll(/\b(?:this|node)\._\("([^"]+)"\)/g)].map((m) => m[1]),
      ];
      assert.ok(used.length > 0, `${nodeSet}.html uses its catalog`);
      const keys = flatten(catalogOf("en-US", nodeSet));
      for (const key of used) assert.ok(keys.has(key), `${nodeSet}.html uses ${key}, missing in en-US`);
    }
  });

  it("has every error key the node adapters raise (azure-iot.error.* in the device catalog)", () => {
    const errors = flatten(catalogOf("en-US", "azure-iot-device"));
    const sources = [join(root, "src", "nodes"), join(root, "src", "nodes", "shared")].flatMap((dir) =>
      readdirSync(dir)
        .filter((file) => file.endsWith(".ts"))
        .map((file) => readFileSync(join(dir, file), "utf8")),
    );
    const used = sources.flatMap((source) => [
      ...[...source.matchAll(/new Node(?:Configuration|Input)Error\(\s*"(\w+)"/g)].map((m) => m[1]),
      ...[...source.matchAll(/errorText\(RED, "(\w+)"/g)].map((m) => m[1]),
      ...[...source.matchAll(/messageKey: "(\w+)" \| "(\w+)"/g)].flatMap((m) => [m[1], m[2]]),
    ]);
    assert.ok(used.length >= 20, `found ${used.length} error keys in src/nodes`);
    for (const key of used) assert.ok(errors.has(`azure-iot.error.${key}`), `azure-iot.error.${key}`);
  });
});

describe("help texts", () => {
  for (const language of LANGUAGES) {
    it(`${language}: one help text per node type, named after the registered type`, () => {
      for (const nodeSet of nodeSets) {
        const help = readFileSync(join(locales, language, `${nodeSet}.html`), "utf8");
        const names = [...help.matchAll(/data-help-name="([^"]+)"/g)].map((m) => m[1]);
        assert.deepEqual(names, [typeOf(nodeSet)], `${language}/${nodeSet}.html`);
        assert.ok(help.replace(/<[^>]+>/g, "").trim().length > 200, `${language}/${nodeSet}.html has text`);
      }
    });
  }

  it("the editor template of each node set is named after the same type as its help", () => {
    for (const nodeSet of nodeSets) {
      const html = readFileSync(join(root, "nodes", `${nodeSet}.html`), "utf8");
      assert.match(html, new RegExp(`registerType\\("${typeOf(nodeSet)}"`));
      assert.match(html, new RegExp(`data-template-name="${typeOf(nodeSet)}"`));
    }
  });
});
