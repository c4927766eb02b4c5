/**
 * The page of `nbstate serve`: the history view over a store whose kernels are not running.
 * Read-only: it offers no checkout. The token travels in a cookie set by the printed URL.
 */
import { HistoryView, el } from '../core/view.js';
async function getJSON(path, params) {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(`${path}${query ? '?' + query : ''}`, { credentials: 'same-origin' });
    const data = await response.json();
    if (!response.ok) {
        throw new Error(data.error ?? response.statusText);
    }
    return data;
}
class ServeSource {
    constructor(notebook) {
        this.notebook = notebook;
    }
    history() {
        return getJSON('api/history', { notebook: this.notebook });
    }
    show(ref) {
        return getJSON('api/show', { notebook: this.notebook, ref });
    }
    diff(a, b) {
        return getJSON('api/diff', { notebook: this.notebook, a, b });
    }
}
async function main() {
    const root = document.getElementById('app');
    if (window.location.search.includes('token=')) {
        // The cookie holds the token now: keep it out of the address bar and the history.
        window.history.replaceState(null, '', window.location.pathname);
    }
    const bar = el('header', 'nbs-page-header');
    const title = el('h1', undefined, 'nbstate history');
    const store = el('span', 'nbs-page-store');
    const picker = el('select', 'nbs-page-notebook', undefined, { 'aria-label': 'notebook' });
    const reload = el('button', 'nbs-button nbs-refresh', 'Refresh', { type: 'button' });
    bar.append(title, store, picker, reload);
    const view = new HistoryView();
    root.append(bar, view.node);
    let listing;
    try {
        listing = await getJSON('api/notebooks', {});
    }
    catch (err) {
        view.showNotice(`Cannot read the store: ${err.message}`);
        return;
    }
    store.textContent = listing.store;
    for (const nb of listing.notebooks) {
        picker.append(el('option', undefined, `${nb.path ?? nb.id} (${nb.commits} commits)`, { value: nb.id }));
    }
    picker.hidden = listing.notebooks.length < 2;
    const open = async () => {
        if (!picker.value) {
            view.showNotice('This store holds no notebook yet.');
            return;
        }
        view.setSource(new ServeSource(picker.value));
        try {
            view.showNotice('');
            await view.refresh();
        }
        catch (err) {
            view.showNotice(`Cannot read the history: ${err.message}`);
        }
    };
    picker.addEventListener('change', () => void open());
    reload.addEventListener('click', () => void view.refresh().catch(err => view.showNotice(err.message)));
    await open();
}
void main();
