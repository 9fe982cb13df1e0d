import type { ComponentChildren } from 'preact';

/** A column's heading: its words, or words for screen readers only (a column of buttons needs no visible heading). */
export type ListColumn = string | { label: string; visuallyHidden: true };

/**
 * The console's lists (requests, images, keys): one table style, a row per item. On a phone app.css turns each row
 * into a card and labels each cell by its `data-label`, which the rows (the pages' own) give.
 */
export function ListTable({ columns, children }: { columns: readonly ListColumn[]; children: ComponentChildren }) {
  return (
    <table class="requests">
      <thead>
        <tr>
          {columns.map((c) =>
            typeof c === 'string' ? (
              <th key={c} scope="col">
                {c}
              </th>
            ) : (
              <th key={c.label} scope="col">
                <span class="visually-hidden">{c.label}</span>
              </th>
            ),
          )}
        </tr>
      </thead>
      <tbody>{children}</tbody>
    </table>
  );
}
