/**
 * The metric instruments pveflow's code uses, shaped after prom-client's API (`inc(labels, value)`,
 * `set(labels, value)`, `observe(labels, value)`, `registry.metrics()`), so that prom-client's own objects fit these
 * interfaces and replacing `TextRegistry` with it changes no caller. `TextRegistry` is the stand-in until then: it
 * keeps the values in memory and renders Prometheus' text exposition format 0.0.4.
 */
export type Labels<L extends string> = { [K in L]: string };

export interface Counter<L extends string> {
  inc(labels: Labels<L>, value?: number): void;
}

export interface Gauge<L extends string> {
  set(labels: Labels<L>, value: number): void;
  inc(labels: Labels<L>, value?: number): void;
  dec(labels: Labels<L>, value?: number): void;
  /** Drops every series, before a collector sets the current ones (a state that no longer has requests disappears). */
  reset(): void;
}

export interface Histogram<L extends string> {
  observe(labels: Labels<L>, value: number): void;
}

interface MetricDef<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

export interface GaugeDef<L extends string> extends MetricDef<L> {
  /** Runs before each scrape; for values read from elsewhere (Temporal visibility counts). */
  collect?: (gauge: Gauge<L>) => Promise<void> | void;
}

export interface HistogramDef<L extends string> extends MetricDef<L> {
  /** Upper bounds, ascending; `+Inf` is added. */
  buckets: readonly number[];
}

export interface MetricsRegistry {
  counter<L extends string>(def: MetricDef<L>): Counter<L>;
  gauge<L extends string>(def: GaugeDef<L>): Gauge<L>;
  histogram<L extends string>(def: HistogramDef<L>): Histogram<L>;
  /** The text exposition of every metric, collectors run first. */
  metrics(): Promise<string>;
  readonly contentType: string;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Series {
  labels: Record<string, string>;
  value: number;
  /** Histograms: cumulative counts per bucket, and the sum. */
  buckets?: number[];
  sum?: number;
}

interface Family {
  type: 'counter' | 'gauge' | 'histogram';
  def: MetricDef<string> & { buckets?: readonly number[] };
  series: Map<string, Series>;
  collect?: () => Promise<void> | void;
}

export class TextRegistry implements MetricsRegistry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #families = new Map<string, Family>();

  constructor(private readonly opts: { onCollectError?: (metric: string, err: unknown) => void } = {}) {}

  counter<L extends string>(def: MetricDef<L>): Counter<L> {
    const family = this.#register('counter', def);
    return {
      inc: (labels, value = 1) => {
        if (!(value >= 0)) throw new Error(`${def.name}: a counter only goes up (got ${value})`);
        this.#series(family, labels).value += value;
      },
    };
  }

  gauge<L extends string>(def: GaugeDef<L>): Gauge<L> {
    const family = this.#register('gauge', def);
    const gauge: Gauge<L> = {
      set: (labels, value) => void (this.#series(family, labels).value = value),
      inc: (labels, value = 1) => void (this.#series(family, labels).value += value),
      dec: (labels, value = 1) => void (this.#series(family, labels).value -= value),
      reset: () => family.series.clear(),
    };
    if (def.collect) family.collect = () => def.collect!(gauge);
    return gauge;
  }

  histogram<L extends string>(def: HistogramDef<L>): Histogram<L> {
    if (def.buckets.some((b, i) => i > 0 && b <= def.buckets[i - 1]!)) throw new Error(`${def.name}: buckets must ascend`);
    const family = this.#register('histogram', def);
    return {
      observe: (labels, value) => {
        const s = this.#series(family, labels);
        s.buckets ??= def.buckets.map(() => 0);
        def.buckets.forEach((bound, i) => {
          if (value <= bound) s.buckets![i]! += 1;
        });
        s.sum = (s.sum ?? 0) + value;
        s.value += 1;
      },
    };
  }

  async metrics(): Promise<string> {
    const families = [...this.#families.values()];
    // A failing collector must not take the whole scrape down; its gauge keeps what it had, and the owner hears of it.
    await Promise.all(
      families.map(async (f) => {
        try {
          await f.collect?.();
        } catch (err) {
          this.opts.onCollectError?.(f.def.name, err);
        }
      }),
    );
    const out: string[] = [];
    for (const f of families) {
      out.push(`# HELP ${f.def.name} ${f.def.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      out.push(`# TYPE ${f.def.name} ${f.type}`);
      for (const s of f.series.values()) {
        if (f.type !== 'histogram') {
          out.push(`${f.def.name}${renderLabels(s.labels)} ${renderNumber(s.value)}`);
          continue;
        }
        f.def.buckets!.forEach((bound, i) => {
          out.push(`${f.def.name}_bucket${renderLabels({ ...s.labels, le: renderNumber(bound) })} ${s.buckets![i]}`);
        });
        out.push(`${f.def.name}_bucket${renderLabels({ ...s.labels, le: '+Inf' })} ${s.value}`);
        out.push(`${f.def.name}_sum${renderLabels(s.labels)} ${renderNumber(s.sum ?? 0)}`);
        out.push(`${f.def.name}_count${renderLabels(s.labels)} ${s.value}`);
      }
    }
    return `${out.join('\n')}\n`;
  }

  #register(type: Family['type'], def: MetricDef<string> & { buckets?: readonly number[] }): Family {
    if (!NAME.test(def.name)) throw new Error(`'${def.name}' is not a valid metric name`);
    for (const l of def.labelNames) if (!LABEL.test(l) || l === 'le') throw new Error(`${def.name}: '${l}' is not a valid label name`);
    if (this.#families.has(def.name)) throw new Error(`metric ${def.name} is registered twice`);
    const family: Family = { type, def, series: new Map() };
    this.#families.set(def.name, family);
    return family;
  }

  #series(family: Family, labels: Record<string, string>): Series {
    const names = family.def.labelNames;
    const given = Object.keys(labels);
    if (given.length !== names.length || names.some((n) => typeof labels[n] !== 'string')) {
      throw new Error(`${family.def.name} takes labels ${names.join(', ') || '(none)'}, got ${given.join(', ') || '(none)'}`);
    }
    const key = names.map((n) => labels[n]).join('\u0000');
    let s = family.series.get(key);
    if (!s) {
      s = { labels: Object.fromEntries(names.map((n) => [n, labels[n]!])), value: 0 };
      family.series.set(key, s);
    }
    return s;
  }
}

function renderLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const body = entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return `{${body.join(',')}}`;
}

function renderNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}
