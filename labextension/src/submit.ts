/** The submission panel: a form (name, VC and SKU from the user's own list, instances, resources,
 * image, commands, parameters, secrets) and a YAML tab with the generated protocol, editable. The
 * server validates as you type (a dry-run submission) and its errors are shown at the field they
 * name; submit; save as a marketplace template. */
import { Debouncer } from '@lumino/polling';
import { Widget } from '@lumino/widgets';
import * as jsyaml from 'js-yaml';

import type { IPaiApi } from './api';
import { field, h, options } from './dom';
import {
  applyItem,
  checkForm,
  defaultForm,
  errorField,
  formToYaml,
  JobForm,
  MarketItem,
  templateText,
  yamlToForm
} from './model';

type Tab = 'form' | 'yaml';

export class SubmitPanel extends Widget {
  form: JobForm = defaultForm();
  private tab: Tab = 'form';
  private yamlDirty = false;
  private controls: Record<string, HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement> = {};
  private errors: Record<string, HTMLElement> = {};
  private formPane = h('div', { class: 'pai-FormPane', role: 'tabpanel', id: 'pai-submit-form-pane' });
  private yamlPane = h('div', { class: 'pai-YamlPane', role: 'tabpanel', id: 'pai-submit-yaml-pane', hidden: true });
  private yamlText = h('textarea', { class: 'pai-Yaml', spellcheck: 'false', rows: '22' });
  private yamlError = h('div', { class: 'pai-FieldError', 'data-field-error': 'yaml', role: 'alert' });
  private formTab = h('button', { role: 'tab', class: 'pai-Tab', 'aria-controls': 'pai-submit-form-pane' }, 'Form');
  private yamlTab = h('button', { role: 'tab', class: 'pai-Tab', 'aria-controls': 'pai-submit-yaml-pane' }, 'YAML');
  private result = h('div', { class: 'pai-Result', role: 'status', 'aria-live': 'polite' });
  private submitBtn = h('button', { class: 'jp-Button pai-Button pai-Submit', type: 'button' }, 'Submit');
  private imageNote = h('div', { class: 'pai-Note' });
  private templateBtn = h('button', { class: 'jp-Button pai-Button pai-SaveTemplate', type: 'button' }, 'Save as template');
  private validity = h('div', { class: 'pai-Validity', role: 'status', 'aria-live': 'polite' });
  /** fields the user changed: live errors are shown there only (all of them on submit) */
  private touched = new Set<string>();
  /** the live check, once editing pauses */
  private validateSoon: Debouncer<boolean>;
  private validation = 0;

  constructor(
    private api: IPaiApi,
    private onSubmitted: (fw: string) => void = () => undefined,
    liveDelayMs = 600
  ) {
    super();
    this.id = 'pai-submit';
    this.validateSoon = new Debouncer(() => this.validate(), liveDelayMs);
    this.addClass('pai-Panel');
    this.addClass('pai-SubmitPanel');
    this.title.caption = 'Submit a PAI job';
    const num = (min: number) => h('input', { type: 'number', min: String(min), step: '1' });
    const add = (name: keyof JobForm, label: string, control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement) => {
      const f = field(label, control, name);
      this.controls[name] = control;
      this.errors[name] = f.error;
      const edited = () => {
        this.touched.add(name);
        this.readForm();
        this.scheduleValidation();
      };
      control.addEventListener('change', edited);
      control.addEventListener('input', edited);
      this.formPane.append(f.row);
    };
    add('name', 'Job name', h('input', { type: 'text', autocomplete: 'off' }));
    add('virtualCluster', 'Virtual cluster', h('select', {}));
    add('sku', 'SKU', h('select', {}));
    add('instances', 'Instances', num(1));
    add('gpu', 'GPUs per instance', num(0));
    add('cpu', 'CPUs per instance', num(1));
    add('memoryMB', 'Memory (MB) per instance', num(1));
    add('image', 'Docker image', h('input', { type: 'text' }));
    this.formPane.append(this.imageNote);
    add('command', 'Commands (one a line)', h('textarea', { rows: '6', spellcheck: 'false' }));
    add('debugMinutes', 'Keep a failed task for debugging (minutes, 0 = no)', num(0));
    add('parameters', 'Parameters (KEY=value a line; use as <% $parameters.KEY %>)',
      h('textarea', { rows: '2', spellcheck: 'false' }));
    add('secrets', 'Secrets (KEY=value a line; use as <% $secrets.KEY %>; masked for everyone else)',
      h('textarea', { rows: '2', spellcheck: 'false', autocomplete: 'off', class: 'pai-Secrets' }));
    (this.controls.virtualCluster as HTMLSelectElement).addEventListener('change', () => void this.loadSkus());
    this.yamlText.setAttribute('aria-label', 'Job protocol (YAML)');
    this.yamlText.addEventListener('input', () => {
      this.yamlDirty = true;
      this.touched.add('yaml');
      this.scheduleValidation();
    });
    this.yamlPane.append(this.yamlText, this.yamlError);
    this.formTab.onclick = () => this.showTab('form');
    this.yamlTab.onclick = () => this.showTab('yaml');
    this.submitBtn.onclick = () => void this.submit();
    this.templateBtn.onclick = () => void this.saveTemplate();
    this.node.append(
      h('h2', { class: 'pai-Title' }, 'Submit a PAI job'),
      h('div', { class: 'pai-Tabs', role: 'tablist', 'aria-label': 'Job editor' }, this.formTab, this.yamlTab),
      this.formPane,
      this.yamlPane,
      this.validity,
      h('div', { class: 'pai-Toolbar' }, this.submitBtn, this.templateBtn),
      this.result
    );
    this.writeForm();
    this.showTab('form');
  }

  /** The user's virtual clusters (PAI's user record) and their SKUs. */
  async loadChoices(): Promise<void> {
    try {
      const me = await this.api.get('users/me');
      const vcs: string[] = me.virtualCluster ?? ['default'];
      options(this.controls.virtualCluster as HTMLSelectElement, vcs.map(v => [v, v] as [string, string]), this.form.virtualCluster);
      if (!vcs.includes(this.form.virtualCluster) && vcs.length) {
        this.form.virtualCluster = vcs[0];
      }
    } catch (e: any) {
      this.result.textContent = `Cannot read your virtual clusters: ${e.message}`;
    }
    await this.loadSkus();
  }

  private async loadSkus(): Promise<void> {
    const sel = this.controls.sku as HTMLSelectElement;
    let skus: [string, string][] = [];
    try {
      const types = await this.api.get(`cluster/sku-types?vc=${encodeURIComponent(this.form.virtualCluster)}`);
      skus = Object.entries<any>(types).map(([k, v]) => [k, `${k} (${v.gpu} GPU, ${v.cpu} CPU, ${v.memory} MB)`]);
    } catch {
      /* a VC without SKUs */
    }
    options(sel, [['', 'Any'], ...skus], this.form.sku);
  }

  setForm(form: JobForm): void {
    this.form = { ...form };
    this.yamlDirty = false;
    this.touched.clear();
    this.validity.textContent = '';
    this.writeForm();
    this.clearErrors();
  }

  /** Take a marketplace item (see model.applyItem). */
  useItem(item: MarketItem): void {
    const { form, yaml } = applyItem(this.form, item);
    this.setForm(form);
    if (yaml) {
      this.yamlText.value = yaml;
      this.yamlDirty = true;
      this.showTab('yaml', false);
    }
    this.result.textContent = `Using marketplace ${item.type} "${item.name}".`;
  }

  private writeForm(): void {
    const f = this.form;
    for (const [k, c] of Object.entries(this.controls)) {
      const v = (f as any)[k];
      if (c instanceof HTMLSelectElement && v && ![...c.options].some(o => o.value === String(v))) {
        c.append(h('option', { value: String(v) }, String(v)));
      }
      c.value = v === undefined ? '' : String(v);
    }
    const img = this.controls.image as HTMLInputElement;
    img.disabled = !!f.imageItem;
    this.imageNote.replaceChildren();
    if (f.imageItem) {
      this.imageNote.append(
        `Image from the marketplace: ${f.imageItem} `,
        h(
          'button',
          {
            class: 'jp-Button pai-Button',
            onclick: () => {
              this.form.imageItem = undefined;
              this.writeForm();
            }
          },
          'Use a URI instead'
        )
      );
    }
    if (!this.yamlDirty) {
      this.yamlText.value = formToYaml(this.form);
    }
  }

  private readForm(): void {
    const c = this.controls;
    const n = (k: string) => Number((c[k] as HTMLInputElement).value);
    this.form = {
      ...this.form,
      name: c.name.value.trim(),
      virtualCluster: c.virtualCluster.value,
      sku: c.sku.value,
      instances: n('instances'),
      gpu: n('gpu'),
      cpu: n('cpu'),
      memoryMB: n('memoryMB'),
      image: c.image.value.trim(),
      command: c.command.value,
      debugMinutes: n('debugMinutes'),
      parameters: c.parameters.value,
      secrets: c.secrets.value
    };
    this.yamlDirty = false;
    this.yamlText.value = formToYaml(this.form);
  }

  showTab(tab: Tab, sync = true): void {
    if (sync && tab === 'form' && this.tab === 'yaml' && this.yamlDirty) {
      try {
        this.form = yamlToForm(this.yamlText.value, this.form);
        this.writeForm();
        this.yamlError.textContent = '';
      } catch (e: any) {
        this.yamlError.textContent = `The YAML cannot be read: ${e.message}`;
        return;
      }
    }
    this.tab = tab;
    this.formPane.hidden = tab !== 'form';
    this.yamlPane.hidden = tab !== 'yaml';
    this.formTab.setAttribute('aria-selected', String(tab === 'form'));
    this.yamlTab.setAttribute('aria-selected', String(tab === 'yaml'));
  }

  private clearErrors(): void {
    for (const e of Object.values(this.errors)) {
      e.textContent = '';
    }
    for (const c of Object.values(this.controls)) {
      c.removeAttribute('aria-invalid');
    }
    this.yamlError.textContent = '';
  }

  showError(name: string, message: string): void {
    const el = this.errors[name] ?? this.yamlError;
    el.textContent = message;
    this.controls[name]?.setAttribute('aria-invalid', 'true');
    if (el !== this.yamlError && this.tab === 'yaml') {
      this.yamlError.textContent = message; // seen where the user is editing
    }
  }

  /** The protocol text to send: the edited YAML, else the form's. */
  protocolText(): string {
    return this.yamlDirty ? this.yamlText.value : formToYaml(this.form);
  }

  scheduleValidation(): void {
    // a stopped check rejects: nothing to report, submit checks everything itself
    void this.validateSoon.invoke().catch(() => undefined);
  }

  /** Live validation: the YAML's syntax here, then everything a submission checks, by the server
   * (``POST jobs?dryRun=true``: nothing is stored). Errors land at the fields the user touched. */
  async validate(): Promise<boolean> {
    const seq = ++this.validation;
    const text = this.protocolText();
    const show = (name: string, message: string) => {
      this.clearErrors();
      if (this.touched.has(name) || (name === 'yaml' && this.touched.size)) {
        this.showError(name, message);
      }
      this.validity.textContent = '';
      this.node.dataset.valid = 'false';
    };
    try {
      jsyaml.load(text);
    } catch (e: any) {
      show('yaml', `The YAML cannot be read: ${e.message}`);
      return false;
    }
    try {
      const r = await this.api.send('POST', 'jobs?dryRun=true', text, 'text/yaml');
      if (seq !== this.validation) {
        return false; // a newer edit is being checked
      }
      this.clearErrors();
      const tasks = r?.totalTaskNumber ?? 0;
      const gpus = r?.totalGpuNumber ?? 0;
      this.validity.textContent = `✓ Valid: ${tasks} task${tasks === 1 ? '' : 's'}, ${gpus} GPU${gpus === 1 ? '' : 's'} in ${r?.virtualCluster ?? ''}.`;
      this.node.dataset.valid = 'true';
      return true;
    } catch (e: any) {
      if (seq === this.validation) {
        show(errorField(e.message), e.message);
      }
      return false;
    }
  }

  /** The job as a private marketplace template named after it (secrets' values left out). */
  async saveTemplate(): Promise<boolean> {
    this.result.textContent = '';
    let template: { text: string; removedSecrets: string[] };
    try {
      template = templateText(this.protocolText());
    } catch (e: any) {
      this.showError('yaml', `The YAML cannot be read: ${e.message}`);
      return false;
    }
    const name = (jsyaml.load(template.text) as any)?.name || this.form.name;
    if (!name) {
      this.showError('name', 'a template needs a name: give the job one');
      return false;
    }
    const body = {
      name,
      type: 'template',
      protocol: template.text,
      summary: `Job template saved from JupyterLab`,
      visibility: 'private'
    };
    try {
      await this.api.send('POST', 'marketplace/items', JSON.stringify(body));
    } catch (e: any) {
      this.result.textContent = `Not saved as a template: ${e.message}`;
      return false;
    }
    const left = template.removedSecrets.length
      ? ` Secrets left out (give them when you use it): ${template.removedSecrets.join(', ')}.`
      : '';
    this.result.textContent = `Saved "${name}" in the marketplace as a private template.${left}`;
    return true;
  }

  async submit(): Promise<boolean> {
    void this.validateSoon.stop();
    this.validation++; // a pending live check must not overwrite what submit shows
    this.clearErrors();
    this.result.textContent = '';
    if (!this.yamlDirty) {
      const local = checkForm(this.form);
      const keys = Object.keys(local);
      if (keys.length) {
        for (const k of keys) {
          this.showError(k, (local as any)[k]);
        }
        this.result.textContent = 'Please correct the marked fields.';
        return false;
      }
    }
    const text = this.protocolText();
    let name = this.form.name;
    try {
      name = (jsyaml.load(text) as any)?.name ?? name;
    } catch {
      /* the server says what is wrong */
    }
    this.submitBtn.disabled = true;
    try {
      await this.api.send('POST', 'jobs', text, 'text/yaml');
      const me = await this.api.get('tokens/check').catch(() => null);
      const fw = me?.username ? `${me.username}~${name}` : name;
      this.result.textContent = `Submitted ${fw}.`;
      this.node.dataset.submitted = fw;
      this.onSubmitted(fw);
      return true;
    } catch (e: any) {
      const target = errorField(e.message);
      this.showError(target, e.message);
      this.result.textContent = `Not submitted: ${e.message}`;
      return false;
    } finally {
      this.submitBtn.disabled = false;
    }
  }

  dispose(): void {
    this.validateSoon.dispose();
    super.dispose();
  }
}
