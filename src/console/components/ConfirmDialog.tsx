import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/**
 * A modal confirmation on the native <dialog>: focus moves into it and is held there, Escape cancels, and focus
 * returns to the button that opened it — the browser does all of that.
 */
export function ConfirmDialog(props: { title: string; confirmLabel: string; danger?: boolean; busy?: boolean; error?: string; onConfirm: () => void; onCancel: () => void; children?: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
    return () => dialog?.close();
  }, []);
  return (
    <dialog
      ref={ref}
      class="dialog"
      aria-labelledby="dialog-title"
      onCancel={(e) => {
        e.preventDefault();
        props.onCancel();
      }}
    >
      <form
        method="dialog"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          props.onConfirm();
        }}
      >
        <h2 id="dialog-title">{props.title}</h2>
        {props.children}
        {props.error && (
          <p class="alert alert-danger" role="alert">
            {props.error}
          </p>
        )}
        <div class="dialog-actions">
          <button type="button" class="button button-quiet" onClick={props.onCancel} disabled={props.busy}>
            Back
          </button>
          <button type="submit" class={`button ${props.danger ? 'button-danger' : 'button-primary'}`} disabled={props.busy}>
            {props.busy ? 'Working…' : props.confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
