import type { ComponentChildren } from 'preact';

/**
 * A labelled form control with its hint and its error: the error is tied to the control (aria-describedby,
 * aria-invalid) so a screen reader reads it with the field, as the API worded it.
 */
export function Field(props: { id: string; label: string; hint?: string; error?: string; children: (describedBy: string | undefined, invalid: boolean) => ComponentChildren; wide?: boolean }) {
  const hintId = props.hint ? `${props.id}-hint` : undefined;
  const errorId = props.error ? `${props.id}-error` : undefined;
  const describedBy = [errorId, hintId].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${props.error ? ' field-invalid' : ''}${props.wide ? ' field-wide' : ''}`}>
      <label for={props.id}>{props.label}</label>
      {props.children(describedBy, Boolean(props.error))}
      {props.error && (
        <p class="field-error" id={errorId}>
          {props.error}
        </p>
      )}
      {props.hint && (
        <p class="field-hint" id={hintId}>
          {props.hint}
        </p>
      )}
    </div>
  );
}
