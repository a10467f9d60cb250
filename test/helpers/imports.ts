import { dirname, relative, resolve } from "node:path";
import ts from "typescript";

/** ImportEdge: one module a file names, resolved to a repo path when it is relative. */
export interface ImportEdge {
  /** the specifier as written */
  spec: string;
  /** repo-relative path for a relative specifier, else the bare specifier (a package) */
  target: string;
  /** erased at build: `import type`, `export type`, an all-type-names import, or `import("x").T` in a type */
  typeOnly: boolean;
  kind: "import" | "export" | "require" | "dynamic" | "import-type";
  line: number;
  /** the comment right above the statement, for a written exception to a rule */
  comment: string;
}

/**
 * scanImports: every module reference of a TypeScript/TSX file, read with the TypeScript parser (not a
 * regex): static imports and re-exports in any quoting, side-effect imports, `require(...)`, dynamic
 * `import(...)`, `import x = require(...)` and `import("...")` type references. A specifier that is not a
 * string literal (a computed `import(expr)`) is reported with target `<computed>`.
 */
export function scanImports(root: string, file: string, text: string): ImportEdge[] {
  const source = ts.createSourceFile(
    file,
    text,
    ts.ScriptTarget.Latest,
    true,
    file.endsWith("x") ? ts.ScriptKind.TSX : ts.ScriptKind.TS,
  );
  const out: ImportEdge[] = [];
  const resolveTarget = (spec: string) =>
    spec.startsWith(".") ? relative(root, resolve(root, dirname(file), spec)) : spec;
  const add = (node: ts.Node, specNode: ts.Expression | undefined, kind: ImportEdge["kind"], typeOnly: boolean) => {
    const stmt = statementOf(node);
    const comment = (ts.getLeadingCommentRanges(text, stmt.getFullStart()) ?? [])
      .map((r) => text.slice(r.pos, r.end))
      .join("\n");
    const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
    if (specNode && ts.isStringLiteralLike(specNode))
      out.push({ spec: specNode.text, target: resolveTarget(specNode.text), typeOnly, kind, line, comment });
    else out.push({ spec: "<computed>", target: "<computed>", typeOnly, kind, line, comment });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const allTypes =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((e) => e.isTypeOnly)));
      add(node, node.moduleSpecifier, "import", allTypes);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      const allTypes =
        node.isTypeOnly ||
        (node.exportClause !== undefined &&
          ts.isNamedExports(node.exportClause) &&
          node.exportClause.elements.length > 0 &&
          node.exportClause.elements.every((e) => e.isTypeOnly));
      add(node, node.moduleSpecifier, "export", allTypes);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression, "require", node.isTypeOnly);
    } else if (ts.isCallExpression(node)) {
      if (node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0], "dynamic", false);
      else if (ts.isIdentifier(node.expression) && node.expression.text === "require")
        add(node, node.arguments[0], "require", false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal as ts.Expression, "import-type", true);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** statementOf: the statement a reference stands in, whose leading comment may explain it. */
function statementOf(node: ts.Node): ts.Node {
  let n = node;
  while (n.parent && !ts.isSourceFile(n.parent)) n = n.parent;
  return n;
}
