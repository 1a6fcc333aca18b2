// The end-of-line station nodes' message catalogues: every text in English, German and Japanese, with the
// same placeholders, every status key the runtime asks for, and a help text per language.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { OPERATIONS } from "../../src/enrollment/index.js";

const LOCALES = join(__dirname, "..", "..", "nodes", "locales");
const LANGUAGES = ["en-US", "de", "ja"];
const FILES: Record<string, string> = {
  "azure-iot-dps-service": "provisio-azure-dps-service",
  "azure-iot-dps-enrollment": "provisio-azure-dps-enrollment",
  "azure-iot-tpm-identity": "provisio-azure-tpm-identity",
};

type Catalogue = { [key: string]: string | Catalogue };

function flatten(catalogue: Catalogue, prefix = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(catalogue)) {
    if (typeof value === "string") out.set(prefix + key, value);
    else for (const [k, v] of flatten(value, `${prefix}${key}.`)) out.set(k, v);
  }
  return out;
}

const placeholders = (text: string): string[] => (text.match(/__\w+__/g) ?? []).sort();

function catalogue(language: string, file: string): Map<string, string> {
  return flatten(JSON.parse(readFileSync(join(LOCALES, language, `${file}.json`), "utf8")) as Catalogue);
}

describe("station node catalogues", () => {
  for (const [file, type] of Object.entries(FILES)) {
    it(`${file}: the same keys and placeholders in ${LANGUAGES.join(", ")}, and help in each`, () => {
      const english = catalogue("en-US", file);
      assert.ok([...english.keys()].every((key) => key.startsWith(`${type}.`)));
      for (const language of LANGUAGES) {
        const translated = catalogue(language, file);
        assert.deepEqual(
          [...translated.keys()].sort(),
          [...english.keys()].sort(),
          `${language}/${file}.json`,
        );
        for (const [key, text] of english) {
          assert.deepEqual(
            placeholders(translated.get(key) ?? ""),
            placeholders(text),
            `${language}: ${key}`,
          );
        }
        const help = readFileSync(join(LOCALES, language, `${file}.html`), "utf8");
        assert.match(help, new RegExp(`data-help-name="${type}"`));
      }
    });
  }

  it("has every status the enrollment and identity nodes show", () => {
    const enrollment = catalogue("en-US", "azure-iot-dps-enrollment");
    const wanted = [
      ...OPERATIONS.map((operation) => `status.working.${operation}`),
      ...["created", "updated", "written", "get", "delete", "listed", "error", "noService"].map(
        (k) => `status.${k}`,
      ),
      "status.bulk.enroll",
      "status.bulk.delete",
    ];
    for (const key of wanted) assert.ok(enrollment.has(`provisio-azure-dps-enrollment.${key}`), key);
    const identity = catalogue("en-US", "azure-iot-tpm-identity");
    for (const key of ["reading", "read", "error"]) {
      assert.ok(identity.has(`provisio-azure-tpm-identity.status.${key}`), key);
    }
    assert.ok(existsSync(join(LOCALES, "ja", "azure-iot-dps-enrollment.html")));
  });
});
