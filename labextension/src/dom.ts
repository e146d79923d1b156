/** A tiny DOM builder: h('button', {class: 'x', onclick: f}, 'text'). */
export type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, any> = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) {
      continue;
    }
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value') {
      (el as any).value = v;
    } else if (k === 'checked') {
      (el as any).checked = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return el;
}

let uid = 0;
/** A labelled control: <label for=id>text</label> control, and an error line under it. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  name: string
): { row: HTMLElement; error: HTMLElement } {
  const id = control.id || `pai-field-${name}-${++uid}`;
  control.id = id;
  control.name = name;
  const error = h('div', { class: 'pai-FieldError', 'data-field-error': name, role: 'alert', id: `${id}-error` });
  control.setAttribute('aria-describedby', error.id);
  const row = h('div', { class: 'pai-Field', 'data-field': name }, h('label', { for: id }, label), control, error);
  return { row, error };
}

export function options(select: HTMLSelectElement, values: [string, string][], selected?: string): void {
  select.replaceChildren(...values.map(([v, text]) => h('option', { value: v }, text)));
  if (selected !== undefined && values.some(([v]) => v === selected)) {
    select.value = selected;
  }
}

export function stateBadge(state: string): HTMLElement {
  return h('span', { class: `pai-State pai-State-${state}` }, state);
}

export function fmtTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toLocaleString() : '';
}
