/** The build's progress, announced to assistive technology as a progressbar with its stage as the value text. */
export function ProgressBar({ value, label, caption, tone = 'progress' }: { value: number; label: string; caption?: string; tone?: 'progress' | 'success' | 'danger' | 'idle' }) {
  const pct = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div class={`progress progress-${tone}`}>
      <div class="progress-track" role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} aria-valuetext={caption ? `${pct} %, ${caption}` : `${pct} %`}>
        <div class="progress-fill" style={{ width: `${pct}%` }} />
      </div>
      <div class="progress-caption">
        <span class="progress-pct">{pct} %</span>
        {caption && <span class="progress-stage">{caption}</span>}
      </div>
    </div>
  );
}
