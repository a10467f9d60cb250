import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import ts from "typescript";

const root = resolve(import.meta.dir, "..");

/**
 * misnamedDocComments: every doc comment that opens with `Name:` must sit on the declaration called
 * Name (or `Owner.Name`), so a comment never describes an identifier that was renamed or moved away.
 * A comment that opens with prose is not checked.
 */
export function misnamedDocComments(file: string, text: string): string[] {
  const source = ts.createSourceFile(
    file,
    text,
    ts.ScriptTarget.Latest,
    true,
    file.endsWith("x") ? ts.ScriptKind.TSX : ts.ScriptKind.TS,
  );
  const out: string[] = [];
  const nameOf = (node: ts.Node): string | undefined => {
    const name = (node as { name?: ts.Node }).name;
    if (name && (ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isPrivateIdentifier(name)))
      return name.text.replace(/^#/, "");
    if (ts.isVariableStatement(node)) {
      const first = node.declarationList.declarations[0];
      if (first && ts.isIdentifier(first.name)) return first.name.text;
    }
    return undefined;
  };
  const visit = (node: ts.Node) => {
    // Every doc comment right above a declaration is checked: one left stacked above another names
    // a declaration that has moved away.
    for (const doc of (node as { jsDoc?: ts.JSDoc[] }).jsDoc ?? []) {
      const c = doc.comment;
      const text = typeof c === "string" ? c : (c ?? []).map((p) => p.text).join("");
      const opened = /^\s*([A-Za-z_$][\w$]*(?:\.[\w$]+)?):(\s|$)/.exec(text)?.[1];
      const name = nameOf(node);
      if (opened && name && opened !== name && !opened.endsWith(`.${name}`)) {
        out.push(
          `${file}:${source.getLineAndCharacterOfPosition(doc.getStart(source)).line + 1} "${opened}:" documents ${name}`,
        );
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

const files = (dir: string) =>
  readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.tsx?$/.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));

describe("doc comments", () => {
  it("each one that names something sits on what it names", () => {
    const wrong = ["src", "views", "bench", "scripts", "test"]
      .flatMap(files)
      .flatMap((f) => misnamedDocComments(f, readFileSync(join(root, f), "utf8")));
    expect(wrong).toEqual([]);
  }, 30_000);

  it("catches a comment left on a renamed function, and passes prose and the right name", () => {
    expect(misnamedDocComments("a.ts", "/** oldName: does things */\nexport function newName() {}\n")).toHaveLength(1);
    expect(misnamedDocComments("a.ts", "/** newName: does things */\nexport function newName() {}\n")).toEqual([]);
    expect(misnamedDocComments("a.ts", "/** Does things: well. */\nexport function newName() {}\n")).toEqual([]);
    expect(misnamedDocComments("a.ts", "/** does things well */\nexport const newName = 1;\n")).toEqual([]);
    expect(misnamedDocComments("a.ts", "class A {\n  /** A.run: goes */\n  run() {}\n}\n")).toEqual([]);
    expect(
      misnamedDocComments("a.ts", "/** moved: gone */\n/** here: stays */\nexport function here() {}\n"),
    ).toHaveLength(1);
  });
});
