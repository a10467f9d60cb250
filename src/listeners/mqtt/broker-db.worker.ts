/*
 * The writer of broker.db, on its own thread. Each batch of ops the main thread sends is
 * one transaction, committed with fsync (WAL, synchronous=FULL) before the batch is reported done; the
 * main thread acknowledges what the batch held (PUBACK, HTTP 202) only then. It is an entrypoint of the
 * build (scripts/build.ts takes every `*.worker.ts`), so it imports little beyond its own folder's SQL.
 */
import { Database, type Statement } from "bun:sqlite";
import {
  decodeOps,
  noFollowFlags,
  op,
  resetTables,
  statements,
  writerPragmas,
  type WorkerReply,
  type WorkerRequest,
} from "./broker-db.ts";

declare const self: Worker;

let db: Database | undefined;
let prepared: Statement[] = [];

const reply = (m: WorkerReply) => self.postMessage(m);

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const m = event.data;
  try {
    if (m.t === "open") {
      db = new Database(m.file, noFollowFlags); // a link swapped in since the load is not followed either
      for (const p of writerPragmas) db.run(p);
      // a test seam for a full disk: SQLite answers SQLITE_FULL past this many pages, as on a full disk
      if (m.maxPageCount !== undefined) db.run(`PRAGMA max_page_count = ${Math.floor(m.maxPageCount)}`);
      prepared = statements.map((sql) => db!.prepare(sql));
      reply({ t: "opened" });
    } else if (m.t === "batch") {
      const d = db!;
      try {
        const ops = decodeOps(m.ops, m.length);
        d.transaction(() => {
          for (const o of ops) {
            if (o[0] === op.reset) for (const t of resetTables) d.run(`DELETE FROM ${t}`);
            else prepared[o[0]]!.run(...(o.slice(1) as never[]));
          }
        }).immediate();
      } catch (err) {
        const e = err as { message?: string; code?: string };
        return reply({ t: "done", id: m.id, ok: false, error: e.message ?? String(err), code: e.code });
      }
      const { page_count: pages } = d.query("PRAGMA page_count").get() as { page_count: number };
      const { page_size: size } = d.query("PRAGMA page_size").get() as { page_size: number };
      reply({ t: "done", id: m.id, ok: true, fileBytes: pages * size });
    } else if (m.t === "close") {
      for (const s of prepared) s.finalize();
      prepared = [];
      db?.close();
      db = undefined;
      reply({ t: "closed" });
    }
  } catch (err) {
    reply({ t: "failed", error: (err as Error).message ?? String(err) });
  }
};
