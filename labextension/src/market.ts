/** The marketplace browser: search, filter by type and tag, an item's detail, "use in submission panel". */
import { Debouncer } from '@lumino/polling';
import { Widget } from '@lumino/widgets';

import type { IPaiApi } from './api';
import { h, options } from './dom';
import { MarketItem, tagNames } from './model';

export class MarketPanel extends Widget {
  private search = h('input', { type: 'search', placeholder: 'Search', 'aria-label': 'Search the marketplace' });
  private typeSel = h('select', { 'aria-label': 'Item type' });
  private tagSel = h('select', { 'aria-label': 'Tag' });
  private list = h('ul', { class: 'pai-MarketList', 'aria-label': 'Marketplace items' });
  private detail = h('div', { class: 'pai-MarketDetail' });
  private message = h('div', { class: 'pai-Message', role: 'status' });
  private loaded = false;
  /** a search as you type, once typing pauses */
  private searchSoon = new Debouncer(() => this.refresh(), 250);

  constructor(
    private api: IPaiApi,
    private onUse: (item: MarketItem) => void
  ) {
    super();
    this.id = 'pai-market';
    this.addClass('pai-Panel');
    this.addClass('pai-MarketPanel');
    this.title.caption = 'PAI marketplace';
    options(this.typeSel, [
      ['', 'All types'],
      ['template', 'Templates'],
      ['dockerimage', 'Docker images'],
      ['data', 'Data'],
      ['script', 'Scripts']
    ]);
    options(this.tagSel, [['', 'All tags']]);
    this.search.oninput = () => void this.searchSoon.invoke().catch(() => undefined);
    this.typeSel.onchange = () => void this.refresh();
    this.tagSel.onchange = () => void this.refresh();
    this.node.append(
      h('h2', { class: 'pai-Title' }, 'PAI marketplace'),
      h('div', { class: 'pai-Toolbar' }, this.search, this.typeSel, this.tagSel),
      this.message,
      this.list,
      this.detail
    );
  }

  async loadTags(): Promise<void> {
    try {
      const tags: any[] = await this.api.get('marketplace/tags');
      options(
        this.tagSel,
        [['', 'All tags'], ...tags.map(t => [t.name, `${t.name} (${t.itemNumber ?? ''})`] as [string, string])],
        this.tagSel.value
      );
    } catch {
      /* no tags */
    }
  }

  async refresh(): Promise<void> {
    const q = new URLSearchParams();
    if (this.search.value.trim()) {
      q.set('keyword', this.search.value.trim());
    }
    if (this.typeSel.value) {
      q.set('type', this.typeSel.value);
    }
    if (this.tagSel.value) {
      q.set('tag', this.tagSel.value);
    }
    let items: MarketItem[] = [];
    try {
      items = await this.api.get(`marketplace/items${q.toString() ? `?${q}` : ''}`);
      this.message.textContent = items.length ? '' : 'No item matches.';
    } catch (e: any) {
      this.message.textContent = `Cannot search the marketplace: ${e.message}`;
    }
    this.list.replaceChildren(
      ...items.map(it =>
        h(
          'li',
          { 'data-item': it.name },
          h('button', { class: 'pai-Link', onclick: () => void this.showItem(it.name) }, it.name),
          ' ',
          h('span', { class: 'pai-Type' }, it.type),
          h('div', { class: 'pai-Summary' }, it.summary ?? '')
        )
      )
    );
  }

  async showItem(name: string): Promise<void> {
    let it: MarketItem;
    try {
      it = await this.api.get(`marketplace/items/${encodeURIComponent(name)}`);
    } catch (e: any) {
      this.detail.replaceChildren(h('div', { class: 'pai-Error', role: 'alert' }, e.message));
      return;
    }
    const use = h('button', { class: 'jp-Button pai-Button pai-UseItem', onclick: () => this.onUse(it) }, 'Use in submission panel');
    this.detail.replaceChildren(
      h('h3', {}, it.name, ' ', h('span', { class: 'pai-Type' }, it.type)),
      h('div', {}, `by ${it.author}, version ${it.version ?? ''} · ${it.useNumber ?? 0} uses · ${it.starNumber ?? 0} stars`),
      h('div', { class: 'pai-Tags' }, ...tagNames(it).map(t => h('span', { class: 'pai-Tag' }, t))),
      h('p', {}, it.summary ?? ''),
      use
    );
    if (it.description) {
      this.detail.append(h('pre', { class: 'pai-Description' }, it.description));
    }
    if (it.protocol) {
      this.detail.append(h('pre', { class: 'pai-Protocol', tabindex: '0', 'aria-label': 'Item content' }, it.protocol));
    }
    this.detail.dataset.item = it.name;
    use.focus();
  }

  protected onAfterShow(): void {
    if (!this.loaded) {
      this.loaded = true;
      void this.loadTags();
      void this.refresh();
    }
  }

  dispose(): void {
    this.searchSoon.dispose();
    super.dispose();
  }
}
