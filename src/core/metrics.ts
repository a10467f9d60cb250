type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels);
  return entries.length ? `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
};

const noLabels: Labels = Object.freeze({});

export class Counter {
  #values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** add: the series without labels; asked per message, so no label text is built. */
  add(by = 1): void {
    this.#bump("", noLabels, by);
  }

  inc(labels: Labels = {}, by = 1): void {
    this.#bump(labelText(labels), labels, by);
  }

  #bump(key: string, labels: Labels, by: number): void {
    const e = this.#values.get(key);
    if (e) e.value += by;
    else if (this.#values.size < 1000) this.#values.set(key, { labels, value: by }); // bounded label sets
  }

  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.#values.values()) lines.push(`${this.name}${labelText(labels)} ${value}`);
    return lines.join("\n");
  }
}

export interface Gauge {
  name: string;
  help: string;
  type?: "gauge" | "counter";
  read(): [Labels, number][] | Promise<[Labels, number][]>;
}

/**
 * Metrics: Prometheus text exposition (format 0.0.4), hand-written and small: counters a listener
 * bumps, and gauges read when scraped. Label values are escaped as the format asks.
 */
export class Metrics {
  #counters = new Map<string, Counter>();
  #gauges: Gauge[] = [];

  counter(name: string, help: string): Counter {
    let c = this.#counters.get(name);
    if (!c) this.#counters.set(name, (c = new Counter(name, help)));
    return c;
  }

  gauge(g: Gauge): () => void {
    this.#gauges.push(g);
    return () => {
      this.#gauges = this.#gauges.filter((x) => x !== g);
    };
  }

  async render(): Promise<string> {
    const parts = [...this.#counters.values()].map((c) => c.render());
    for (const g of this.#gauges) {
      const values = await g.read();
      parts.push(
        [
          `# HELP ${g.name} ${g.help}`,
          `# TYPE ${g.name} ${g.type ?? "gauge"}`,
          ...values.map(([l, v]) => `${g.name}${labelText(l)} ${v}`),
        ].join("\n"),
      );
    }
    return `${parts.join("\n")}\n`;
  }
}
