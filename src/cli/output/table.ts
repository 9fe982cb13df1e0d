/** Cells are text; an absent value shows as a dash so that columns never collapse. */
export type Cell = string | number | boolean | undefined | null;

export interface TableOptions {
  /** Bold headers: only for a terminal, and never when NO_COLOR is set. */
  styled?: boolean;
}

const show = (c: Cell): string => (c === undefined || c === null || c === '' ? '-' : String(c));

/**
 * Aligned columns for people: a header row, then one row each, separated by two spaces. Only the last column is left
 * unpadded so that a long value (a list of consultants) does not push trailing blanks.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly Cell[])[], opts: TableOptions = {}): string {
  const text = rows.map((r) => headers.map((_, i) => show(r[i]).replace(/\s*\n\s*/g, ' ')));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => r[i]!.length)));
  const render = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const head = render(headers);
  return [opts.styled ? `\x1b[1m${head}\x1b[0m` : head, ...text.map(render)].join('\n');
}

/** Label: value lines, labels aligned; for one record. */
export function formatFields(fields: readonly (readonly [string, Cell])[]): string {
  const width = Math.max(...fields.map(([label]) => label.length));
  return fields.map(([label, value]) => `${`${label}:`.padEnd(width + 1)}  ${show(value)}`).join('\n');
}

/** Whether output may carry terminal styling. */
export function stylable(stream: NodeJS.WriteStream): boolean {
  return Boolean(stream.isTTY) && !process.env.NO_COLOR;
}
