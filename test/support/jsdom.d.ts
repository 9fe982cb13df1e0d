/**
 * The little of jsdom the architecture doc test uses (a DOM for Mermaid's sanitizer). @types/jsdom is not used: it
 * pulls the DOM's lib into the whole project, whose `fetch` and streams then take the browser's types.
 */
declare module 'jsdom' {
  export class JSDOM {
    constructor(html: string);
    readonly window: { readonly document: object; close(): void };
  }
}
