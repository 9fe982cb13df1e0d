import { href } from '../router';

export function NotFound({ what }: { what: string }) {
  return (
    <section class="empty-state" aria-labelledby="not-found-title">
      <h1 id="not-found-title">Not found</h1>
      <p>{what}</p>
      <a class="button button-primary" href={href.list}>
        Back to requests
      </a>
    </section>
  );
}
