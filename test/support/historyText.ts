/**
 * Everything a history holds, as text an attacker without the codec key could read: every byte field (payload data,
 * metadata) decoded as UTF-8, every string as it is. Searching `JSON.stringify(history)` alone would miss secrets,
 * because payload bytes serialise as arrays of numbers.
 */
export function historyPlaintext(history: unknown): string {
  const parts: string[] = [];
  const walk = (v: unknown): void => {
    if (v === null || v === undefined) return;
    if (v instanceof Uint8Array) parts.push(Buffer.from(v).toString('utf8'));
    else if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (typeof v === 'object') Object.values(v as Record<string, unknown>).forEach(walk);
  };
  walk(history);
  return parts.join('\n');
}
