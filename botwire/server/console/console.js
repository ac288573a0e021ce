// botwire console: a client of botwire's public HTTP API, with the token a person pastes in.
// Every value is shown as text (textContent, never HTML); the token is kept for this tab only
// (sessionStorage) and travels in the Authorization header, never in a URL.
"use strict";

(() => {
  const TOKEN_KEY = "botwire.console.token";
  const ROW = 36;           // px: one row of a windowed list
  const KEY_PAGE = 1000;    // keys per request
  const CHAT_PAGE = 200;    // messages shown per step of a chat
  const $ = (id) => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let me = null;            // GET /v1/whoami
  const st = {
    ns: null, key: null, prefix: "", sort: "key",
    keys: [], cursor: null, complete: false, loading: false, active: -1, keysGen: 0,
    entry: null, tab: "value", dirty: false, follow: null, nsTimer: null,
    chatShown: 0, history: [], auditCursor: 0,
  };

  // -- small helpers ------------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function say(text, bad) {
    const box = $("status");
    box.textContent = text || "";
    box.classList.toggle("bad", Boolean(bad));
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " kB";
    return (n / 1048576).toFixed(1) + " MB";
  }

  function when(value) {
    if (value === null || value === undefined) return "";
    const date = typeof value === "number" ? new Date(value / 1000) : new Date(value);
    return isNaN(date) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }

  function enc(text) { return encodeURIComponent(text); }

  function count(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

  function detailOf(data) {
    if (!data) return "";
    if (typeof data === "string") return data;
    const detail = data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
    return JSON.stringify(data);
  }

  async function api(method, path, body, headers) {
    const sent = Object.assign({}, headers || {});
    if (token) sent.Authorization = "Bearer " + token;
    if (body !== undefined) sent["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method, headers: sent, cache: "no-store", credentials: "omit",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!res.ok) {
      const error = new Error(detailOf(data) || res.statusText);
      error.status = res.status;
      error.kind = data && data.error;
      throw error;
    }
    return data;
  }

  async function batch(ops) {
    return (await api("POST", "/v1/batch", { ops })).results;
  }

  function needs(root) {
    for (const node of (root || document).querySelectorAll("[data-needs]")) {
      const need = node.getAttribute("data-needs");
      node.hidden = !me || (need === "write" && me.read_only) || (need === "admin" && !me.admin)
        || (need === "tokens" && !me.manages_tokens);
    }
  }

  function confirmDialog(text) {
    const dialog = $("confirm");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    });
  }

  // -- JSON text: pretty-printed without parsing, so numbers stay exactly as stored ---------

  function formatJson(text) {
    const out = [];
    let depth = 0, inString = false, escaped = false, start = 0;
    const pad = () => "\n" + "  ".repeat(depth);
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        if (escaped) escaped = false;
        else if (c === "\\") escaped = true;
        else if (c === '"') { inString = false; out.push(text.slice(start, i + 1)); }
        continue;
      }
      if (c === '"') { inString = true; start = i; continue; }
      if (c === "{" || c === "[") {
        let j = i + 1;
        while (j < text.length && " \t\r\n".includes(text[j])) j++;
        if (text[j] === (c === "{" ? "}" : "]")) { out.push(c + text[j]); i = j; continue; }
        depth++;
        out.push(c + pad());
      } else if (c === "}" || c === "]") { depth--; out.push(pad() + c); }
      else if (c === ",") out.push("," + pad());
      else if (c === ":") out.push(": ");
      else if (!" \t\r\n".includes(c)) out.push(c);
    }
    return out.join("");
  }

  // -- sign in ------------------------------------------------------------------------------

  async function start() {
    try {
      me = await api("GET", "/v1/whoami");
    } catch (error) {
      me = null;
      if (error.status === 401) {
        if (token) $("signin-error").textContent = "That token was not accepted: " + error.message;
        token = null;
        sessionStorage.removeItem(TOKEN_KEY);
        showSignin();
        return;
      }
      say("The server did not answer: " + error.message, true);
      return;
    }
    $("signin").hidden = true;
    $("nav").hidden = false;
    $("who").hidden = false;
    const who = $("who-name");
    who.replaceChildren(el("span", { text: me.anonymous ? "no token (local server)" : "token " + me.name }));
    if (me.read_only) who.append(" ", el("span", { class: "badge", text: "read-only" }));
    if (me.admin) who.append(" ", el("span", { class: "badge", text: "admin" }));
    $("sign-out").hidden = Boolean(me.anonymous);
    needs();
    route();
  }

  function showSignin() {
    for (const id of ["browse", "search", "audit", "tokens", "quota", "webhooks"]) $(id).hidden = true;
    $("nav").hidden = true;
    $("who").hidden = true;
    $("signin").hidden = false;
    $("token").focus();
  }

  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    $("signin-error").textContent = "";
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });

  $("sign-out").addEventListener("click", () => {
    stopFollowing();
    token = null;
    me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    history.pushState(null, "", "/console");
    showSignin();
  });

  // -- navigation: the URL says what is open (?ns=, &key=, ?view=) -------------------------

  function go(params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value) query.set(name, value);
    const text = query.toString();
    history.pushState(null, "", "/console" + (text ? "?" + text : ""));
    route();
  }

  window.addEventListener("popstate", () => { if (me) route(); });

  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-nav]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    const view = link.getAttribute("data-nav");
    go(view === "home" ? {} : { view });
  });

  function route() {
    const query = new URLSearchParams(location.search);
    const view = query.get("view") || "browse";
    for (const id of ["browse", "search", "audit", "tokens", "quota", "webhooks"]) $(id).hidden = id !== view;
    for (const link of document.querySelectorAll("#nav a[data-nav]")) {
      const name = link.getAttribute("data-nav");
      const current = name === view || (name === "home" && view === "browse");
      if (current) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
    }
    say("");
    if (view !== "browse") {  // coming back opens the namespace afresh, following it again
      stopFollowing();
      st.ns = null;
      st.key = null;
    }
    if (view === "search") return openSearch(query);
    if (view === "audit") return openAudit();
    if (view === "tokens") return openTokens();
    if (view === "quota") return openQuota();
    if (view === "webhooks") return openWebhooks();
    return openBrowse(query.get("ns"), query.get("key"));
  }

  // -- browse: namespaces, keys, one key ---------------------------------------------------

  async function openBrowse(ns, key) {
    const browse = $("browse");
    browse.dataset.show = key ? "detail" : ns ? "keys" : "ns";
    loadNamespaces();
    if (ns !== st.ns) {
      st.ns = ns;
      st.prefix = "";
      $("key-prefix").value = "";
      st.key = null;
      if (ns) { loadKeys(); follow(ns); } else { stopFollowing(); clearKeys(); }
    }
    $("keys-title").textContent = ns ? ns : "Keys";
    $("new-key").disabled = !ns;
    if (key !== st.key || (key && !st.entry)) {
      st.key = key;
      st.dirty = false;
      if (key) await loadEntry(true); else showEntry(null);
    }
    renderKeys();
  }

  let namespacesLoading = null;

  async function loadNamespaces() {
    if (namespacesLoading) return namespacesLoading;
    namespacesLoading = (async () => {
      try {
        const data = await api("GET", "/v1/namespaces");
        renderNamespaces(data.namespaces);
      } catch (error) {
        say("Could not list the namespaces: " + error.message, true);
      } finally {
        namespacesLoading = null;
      }
    })();
    return namespacesLoading;
  }

  function renderNamespaces(list) {
    const filter = $("ns-filter").value.trim().toLowerCase();
    const box = $("ns-list");
    box.replaceChildren();
    const shown = list.filter((n) => !filter || n.namespace.toLowerCase().includes(filter));
    for (const info of shown.slice(0, 2000)) {
      const button = el("button", {
        type: "button", "aria-current": info.namespace === st.ns ? "true" : null,
        title: info.namespace, onclick: () => go({ ns: info.namespace }),
      }, el("span", { class: "name", text: info.namespace }),
      el("span", { class: "size", text: `${count(info.keys, "key")} · ${bytes(info.bytes)}` }));
      box.append(el("li", {}, button));
    }
    if (!shown.length) box.append(el("li", { class: "muted", text: list.length ? "No namespace matches." : "No namespace holds anything yet." }));
    st.namespaces = list;
  }

  $("ns-filter").addEventListener("input", () => renderNamespaces(st.namespaces || []));

  function clearKeys() {
    st.keysGen++;  // a page still loading for the old listing is dropped when it arrives
    st.keys = []; st.cursor = null; st.complete = false; st.active = -1; st.loading = false;
    $("keys-count").textContent = "";
    renderKeys();
  }

  async function loadKeys() {
    clearKeys();
    await loadMoreKeys();
    $("key-list").scrollTop = 0;
  }

  async function loadMoreKeys() {
    if (!st.ns || st.loading || st.complete) return;
    st.loading = true;
    const gen = st.keysGen;
    const query = new URLSearchParams({ limit: KEY_PAGE, sort: st.sort });
    if (st.prefix) query.set("prefix", st.prefix);
    if (st.cursor) query.set("cursor", st.cursor);
    try {
      const page = await api("GET", `/memory/${enc(st.ns)}?${query}`);
      if (gen !== st.keysGen) return;
      st.keys.push(...page.keys);
      st.cursor = page.next_cursor;
      st.complete = !page.next_cursor;
      $("keys-count").textContent = keysCount();
      renderKeys();
    } catch (error) {
      say("Could not list the keys: " + error.message, true);
    } finally {
      if (gen === st.keysGen) st.loading = false;
    }
  }

  function keysCount() {
    return st.complete ? count(st.keys.length, "key") : `${st.keys.length}+ keys`;
  }

  function renderKeys() {
    const box = $("key-list");
    const total = st.keys.length;
    const first = Math.max(0, Math.floor(box.scrollTop / ROW) - 10);
    const last = Math.min(total, Math.ceil((box.scrollTop + (box.clientHeight || 600)) / ROW) + 10);
    const spacer = el("div", { class: "spacer" });
    spacer.style.height = total * ROW + "px";
    const rows = [spacer];
    for (let i = first; i < last; i++) {
      const info = st.keys[i];
      const row = el("div", {
        class: "item", role: "option", id: "key-row-" + i,
        "aria-selected": info.key === st.key ? "true" : "false",
        title: info.key, "data-key": info.key,
        onclick: () => { st.active = i; go({ ns: st.ns, key: info.key }); },
      }, el("span", { class: "name", text: info.key }),
      el("span", { class: "size", text: bytes(info.bytes) }));
      row.style.top = i * ROW + "px";
      if (i === st.active) row.classList.add("active");
      rows.push(row);
    }
    box.replaceChildren(...rows);
    if (st.active >= 0 && st.active < total) box.setAttribute("aria-activedescendant", "key-row-" + st.active);
    else box.removeAttribute("aria-activedescendant");
    if (!total && st.ns && st.complete) box.append(el("p", { class: "muted", text: "No keys here." }));
    if (last >= total - 50 && !st.complete) loadMoreKeys();
  }

  $("key-list").addEventListener("scroll", () => requestAnimationFrame(renderKeys));

  $("key-list").addEventListener("keydown", (event) => {
    const total = st.keys.length;
    if (!total) return;
    let next = st.active;
    if (event.key === "ArrowDown") next = Math.min(total - 1, st.active + 1);
    else if (event.key === "ArrowUp") next = Math.max(0, st.active - 1);
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = total - 1;
    else if (event.key === "Enter" && st.active >= 0) {
      event.preventDefault();
      go({ ns: st.ns, key: st.keys[st.active].key });
      return;
    } else return;
    event.preventDefault();
    st.active = next;
    const box = $("key-list");
    if (next * ROW < box.scrollTop) box.scrollTop = next * ROW;
    else if ((next + 1) * ROW > box.scrollTop + box.clientHeight) box.scrollTop = (next + 1) * ROW - box.clientHeight;
    renderKeys();
  });

  let prefixTimer = null;
  $("key-prefix").addEventListener("input", () => {
    clearTimeout(prefixTimer);
    prefixTimer = setTimeout(() => { st.prefix = $("key-prefix").value; loadKeys(); }, 200);
  });
  $("key-sort").addEventListener("change", () => { st.sort = $("key-sort").value; loadKeys(); });

  for (const button of document.querySelectorAll("[data-back]")) {
    button.addEventListener("click", () => {
      go(button.getAttribute("data-back") === "ns" ? {} : { ns: st.ns });
    });
  }

  // -- one key ------------------------------------------------------------------------------

  async function loadEntry(resetTab) {
    const ns = st.ns, key = st.key;
    const [record] = await batch([{ op: "get", ns, key }]).catch((error) => {
      say("Could not read the key: " + error.message, true);
      return [undefined];
    });
    if (record === undefined || ns !== st.ns || key !== st.key) return;  // another key is open
    st.entry = record;
    if (resetTab) st.tab = "value";
    showEntry(record);
  }

  function showEntry(record) {
    $("detail-title").textContent = st.key || "Key";
    $("detail-empty").hidden = Boolean(st.key);
    $("detail").hidden = !st.key;
    $("live-note").hidden = true;
    if (!st.key) { st.entry = null; return; }
    const meta = $("meta");
    meta.replaceChildren();
    if (!record) {
      meta.append(el("dt", { text: "State" }), el("dd", { text: "missing (deleted, or expired)" }));
      $("value").textContent = "";
      $("chat").hidden = true;
      $("value").hidden = false;
      if (!st.dirty) { $("editor").value = ""; st.editVersion = 0; }
      selectTab(st.tab === "history" ? "history" : "value");
      return;
    }
    const rows = [
      ["Version", record.version], ["Size", bytes(record.size)],
      ["Created", when(record.created_at)], ["Changed", when(record.updated_at)],
      ["Expires", record.expires_at ? `${when(record.expires_at)} (in ${Math.max(0, Math.round((record.expires_at / 1000 - Date.now()) / 1000))} s)` : "never"],
    ];
    if (record.ttl) rows.push(["TTL", `${record.ttl} s`]);
    for (const [name, value] of rows) meta.append(el("dt", { text: name }), el("dd", { text: value }));
    showValue(record.value);
    if (!st.dirty) {
      st.editVersion = record.version;
      $("editor").value = formatJson(record.value);
      $("editor-error").textContent = "";
      $("conflict").hidden = true;
    }
    $("ttl").value = record.ttl ? Math.round(record.ttl) : "";
    selectTab(st.tab);
  }

  function showValue(text) {
    let parsed;
    try { parsed = JSON.parse(text); } catch { parsed = undefined; }
    const chat = Array.isArray(parsed) && parsed.length > 0 && parsed.every(isMessage);
    $("chat").hidden = !chat;
    $("value").hidden = chat;
    if (chat) showChat(parsed);
    else $("value").textContent = text.length > 2_000_000 ? text : formatJson(text);
  }

  // -- a chat history: a list of messages ---------------------------------------------------

  function isMessage(item) {
    if (!item || typeof item !== "object" || Array.isArray(item)) return false;
    if (typeof item.role === "string") return true;
    return typeof item.type === "string" && ("content" in item || (item.data && typeof item.data === "object"));
  }

  function messageParts(message) {
    const data = message.data && typeof message.data === "object" ? message.data : message;
    const role = message.role || data.type || message.type || "message";
    const content = data.content !== undefined ? data.content : data.text;
    let text = "";
    if (typeof content === "string") text = content;
    else if (Array.isArray(content)) {
      text = content.map((part) => {
        if (typeof part === "string") return part;
        if (part && part.type === "text") return part.text;
        if (part && part.type) return `[${part.type}]`;
        return JSON.stringify(part);
      }).join("\n");
    } else if (content !== undefined && content !== null) text = JSON.stringify(content);
    const kwargs = data.additional_kwargs || {};
    const calls = data.tool_calls || kwargs.tool_calls || [];
    const shown = calls.map((call) => {
      const fn = call.function || {};
      const name = call.name || fn.name || "tool";
      let args = call.args !== undefined ? call.args : fn.arguments;
      if (typeof args !== "string") args = JSON.stringify(args);
      return `${name}(${args})`;
    });
    const callId = data.tool_call_id || message.tool_call_id;
    return { role: String(role), text, calls: shown, callId, name: data.name || message.name };
  }

  function showChat(messages) {
    const box = $("chat");
    st.chat = messages;
    st.chatShown = Math.min(messages.length, CHAT_PAGE);
    box.replaceChildren();
    renderChat();
  }

  function renderChat() {
    const box = $("chat");
    const messages = st.chat;
    const from = messages.length - st.chatShown;
    const list = el("ol", { class: "messages", "aria-label": "Messages" });
    for (let i = from; i < messages.length; i++) {
      const part = messageParts(messages[i]);
      const item = el("li", { class: "msg-item" });
      const card = el("div", { class: "msg-card " + part.role.toLowerCase() });
      card.append(el("div", { class: "role", text: part.role + (part.name ? ` · ${part.name}` : "") + (part.callId ? ` · result of ${part.callId}` : "") }));
      if (part.text) card.append(el("div", { class: "text", text: part.text }));
      for (const call of part.calls) card.append(el("div", { class: "call", text: "calls " + call }));
      item.append(card);
      list.append(item);
    }
    const head = el("div", { class: "row" },
      el("span", { class: "count", text: `${messages.length} messages${from > 0 ? `, the last ${st.chatShown} shown` : ""}` }));
    if (from > 0) {
      head.append(el("button", {
        type: "button", class: "secondary", text: `Show ${Math.min(CHAT_PAGE, from)} earlier`,
        onclick: () => { st.chatShown = Math.min(messages.length, st.chatShown + CHAT_PAGE); renderChat(); },
      }));
    }
    box.replaceChildren(head, list);
  }

  // -- tabs -----------------------------------------------------------------------------------

  function selectTab(name) {
    if (name === "edit" && me && me.read_only) name = "value";
    st.tab = name;
    for (const tab of document.querySelectorAll("[data-tab]")) {
      const on = tab.getAttribute("data-tab") === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    }
    $("panel-value").hidden = name !== "value";
    $("panel-edit").hidden = name !== "edit";
    $("panel-history").hidden = name !== "history";
    if (name === "history") loadHistory();
  }

  for (const tab of document.querySelectorAll("[data-tab]")) {
    tab.addEventListener("click", () => selectTab(tab.getAttribute("data-tab")));
    tab.addEventListener("keydown", (event) => {
      if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
      const tabs = [...document.querySelectorAll("[data-tab]")].filter((t) => !t.hidden);
      const at = tabs.indexOf(tab) + (event.key === "ArrowRight" ? 1 : -1);
      const next = tabs[(at + tabs.length) % tabs.length];
      selectTab(next.getAttribute("data-tab"));
      next.focus();
    });
  }

  // -- edit: save with the version loaded; a conflict shows both ----------------------------

  $("editor").addEventListener("input", () => { st.dirty = true; });

  function editedText() {
    const text = $("editor").value;
    try {
      JSON.parse(text);
    } catch (error) {
      $("editor-error").textContent = "Not valid JSON, nothing was sent: " + error.message;
      return null;
    }
    $("editor-error").textContent = "";
    return text;
  }

  async function save(text, version) {
    const op = { op: "put", ns: st.ns, key: st.key, value: text, keep_ttl: true };
    if (version !== null) op.if_version = version;
    try {
      const [written] = await batch([op]);
      st.dirty = false;
      $("conflict").hidden = true;
      $("live-note").hidden = true;
      say(`Saved version ${written}.`);
      await loadEntry(false);
    } catch (error) {
      if (error.kind === "VersionConflict") return showConflict(text);
      $("editor-error").textContent = "Not saved: " + error.message;
    }
  }

  async function showConflict(mine) {
    const [theirs] = await batch([{ op: "get", ns: st.ns, key: st.key }]);
    st.theirs = theirs;
    $("conflict").hidden = false;
    $("conflict-mine").textContent = formatJson(mine);
    $("conflict-theirs").textContent = theirs ? formatJson(theirs.value) : "(deleted)";
    $("conflict-theirs-title").textContent = theirs ? `Theirs (version ${theirs.version})` : "Theirs";
    $("conflict-text").textContent = "Your save was not written. Choose which value to keep.";
    $("keep-mine").focus();
  }

  $("save").addEventListener("click", () => {
    const text = editedText();
    if (text !== null) save(text, st.editVersion);
  });
  $("revert").addEventListener("click", () => { st.dirty = false; $("live-note").hidden = true; showEntry(st.entry); });
  $("keep-mine").addEventListener("click", () => {
    const text = editedText();
    if (text !== null) save(text, st.theirs ? st.theirs.version : 0);
  });
  $("take-theirs").addEventListener("click", () => {
    st.dirty = false;
    st.entry = st.theirs;
    $("conflict").hidden = true;
    $("live-note").hidden = true;
    showEntry(st.theirs);
    selectTab("edit");
  });

  async function write(ops, done) {
    try {
      await batch(ops);
      say(done);
      await loadEntry(false);
    } catch (error) {
      say(error.message, true);
    }
  }

  $("set-ttl").addEventListener("click", () => {
    const seconds = Number($("ttl").value);
    if (!(seconds > 0)) { say("A TTL is a positive number of seconds; nothing was changed.", true); return; }
    write([{ op: "expire", ns: st.ns, key: st.key, ttl: seconds }], `It now expires in ${seconds} s.`);
  });
  $("remove-ttl").addEventListener("click", () => {
    write([{ op: "expire", ns: st.ns, key: st.key, ttl: null }], "It no longer expires.");
  });
  $("append").addEventListener("click", () => {
    const text = $("append-item").value;
    try { JSON.parse(text); } catch (error) {
      say("The item is not valid JSON; nothing was appended: " + error.message, true);
      return;
    }
    const op = { op: "append", ns: st.ns, key: st.key, values: [text] };
    const max = Number($("append-max").value);
    if ($("append-max").value && max >= 1) op.max_len = Math.floor(max);
    // clear the field once appended, unless something new was typed meanwhile
    write([op], "Appended.").then(() => { if ($("append-item").value === text) $("append-item").value = ""; });
  });
  $("delete").addEventListener("click", async () => {
    if (!(await confirmDialog(`Delete ${st.key} from ${st.ns}? This cannot be undone here (its history stays).`))) return;
    try {
      await api("DELETE", `/memory/${enc(st.ns)}/${enc(st.key)}`);
      const gone = st.key;
      go({ ns: st.ns });
      say(`Deleted ${gone}.`);
    } catch (error) {
      say(error.message, true);
    }
  });

  $("new-key").addEventListener("click", () => {
    $("new-key-name").value = "";
    $("new-key-value").value = "";
    $("new-key-error").textContent = "";
    $("new-key-dialog").showModal();
  });
  $("new-key-create").addEventListener("click", async (event) => {
    event.preventDefault();
    const key = $("new-key-name").value;
    const text = $("new-key-value").value;
    try { JSON.parse(text); } catch (error) {
      $("new-key-error").textContent = "Not valid JSON, nothing was sent: " + error.message;
      return;
    }
    try {
      await batch([{ op: "put", ns: st.ns, key, value: text, if_version: 0 }]);
      $("new-key-dialog").close();
      go({ ns: st.ns, key });
    } catch (error) {
      $("new-key-error").textContent = error.kind === "VersionConflict" ? "That key exists already." : error.message;
    }
  });

  // -- history: versions, a diff between two, restore ---------------------------------------

  let historyRead = 0;

  async function loadHistory() {
    const body = document.createElement("tbody");
    const read = ++historyRead;
    $("diff").replaceChildren();
    let found;
    try {
      found = (await api("GET", `/v1/history?ns=${enc(st.ns)}&key=${enc(st.key)}&limit=100`)).changes;
    } catch (error) {
      say("Could not read the history: " + error.message, true);
      return;
    }
    if (read !== historyRead) return;  // a later read answers instead
    st.history = found;
    const versions = found.filter((c) => c.version !== null);
    found.forEach((change) => {
      const has = change.version !== null;
      const pick = (group, checked) => has ? el("input", {
        type: "radio", name: "pick-" + group, value: change.version, checked,
        "aria-label": `version ${change.version} as ${group.toUpperCase()}`,
      }) : "";
      const row = el("tr", {},
        el("td", {}, pick("a", versions[1] === change)), el("td", {}, pick("b", versions[0] === change)),
        el("td", { class: "mono", text: has ? change.version : "" }), el("td", { text: change.op }),
        el("td", { text: when(change.at) }), el("td", { text: change.actor }));
      const actions = el("td");
      if (has && me && !me.read_only && change !== versions[0]) {
        actions.append(el("button", {
          type: "button", class: "secondary", text: "Restore",
          "aria-label": `Restore version ${change.version}`,
          onclick: () => restore(change.version),
        }));
      }
      row.append(actions);
      body.append(row);
    });
    if (!found.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "The change log holds nothing of this key." })));
    $("history-table").tBodies[0].replaceWith(body);
  }

  async function versionText(version) {
    const data = await api("GET", `/v1/versions?ns=${enc(st.ns)}&key=${enc(st.key)}&version=${version}`);
    return JSON.stringify(data.value, null, 2);
  }

  $("compare").addEventListener("click", async () => {
    const a = document.querySelector('input[name="pick-a"]:checked');
    const b = document.querySelector('input[name="pick-b"]:checked');
    if (!a || !b) { say("Pick a version as A and one as B.", true); return; }
    try {
      const [left, right] = await Promise.all([versionText(a.value), versionText(b.value)]);
      showDiff(left, right, a.value, b.value);
    } catch (error) {
      say(error.message, true);
    }
  });

  function diffLines(a, b) {
    let start = 0;
    while (start < a.length && start < b.length && a[start] === b[start]) start++;
    let endA = a.length, endB = b.length;
    while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) { endA--; endB--; }
    const x = a.slice(start, endA), y = b.slice(start, endB);
    const out = a.slice(0, start).map((line) => [" ", line]);
    if (x.length * y.length > 4_000_000) {  // too large to align: all out, all in
      out.push(...x.map((line) => ["-", line]), ...y.map((line) => ["+", line]));
    } else {
      const table = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
      for (let i = x.length - 1; i >= 0; i--) {
        for (let j = y.length - 1; j >= 0; j--) {
          table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
        }
      }
      let i = 0, j = 0;
      while (i < x.length || j < y.length) {
        if (i < x.length && j < y.length && x[i] === y[j]) { out.push([" ", x[i]]); i++; j++; }
        else if (j < y.length && (i === x.length || table[i][j + 1] >= table[i + 1][j])) { out.push(["+", y[j]]); j++; }
        else { out.push(["-", x[i]]); i++; }
      }
    }
    out.push(...a.slice(endA).map((line) => [" ", line]));
    return out;
  }

  function showDiff(left, right, a, b) {
    const box = $("diff");
    const lines = diffLines(left.split("\n"), right.split("\n"));
    const changed = lines.filter(([mark]) => mark !== " ").length;
    box.replaceChildren(el("p", { class: "muted", text: changed ? `Version ${a} → version ${b}: ${changed} lines differ.` : `Versions ${a} and ${b} hold the same value.` }));
    const classes = { " ": "same", "+": "add", "-": "del" };
    for (const [mark, line] of lines.slice(0, 5000)) {
      box.append(el("span", { class: classes[mark], text: mark + " " + line }));
    }
  }

  async function restore(version) {
    if (!(await confirmDialog(`Restore version ${version} of ${st.key} as its newest version?`))) return;
    try {
      const data = await api("POST", "/v1/restore", { ns: st.ns, key: st.key, version: Number(version) });
      say(`Restored version ${version} as version ${data.version}.`);
      await loadEntry(false);
      loadHistory();
    } catch (error) {
      say("Not restored: " + error.message, true);
    }
  }

  // -- live: the namespace's change feed ------------------------------------------------------

  function stopFollowing() {
    if (st.follow) st.follow.abort();
    st.follow = null;
  }

  async function follow(ns) {
    stopFollowing();
    const control = new AbortController();
    st.follow = control;
    let last = null;
    while (!control.signal.aborted) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (token) headers.Authorization = "Bearer " + token;
        if (last !== null) headers["Last-Event-ID"] = last;
        const res = await fetch(`/v1/changes?ns=${enc(ns)}&values=false`, { headers, signal: control.signal, cache: "no-store" });
        if (res.status === 401 || res.status === 403) return;
        if (!res.ok || !res.body) throw new Error(res.statusText);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = null, kind = "message", data = "";
            for (const line of event.split("\n")) {
              if (line.startsWith("id:")) id = line.slice(3).trim();
              else if (line.startsWith("event:")) kind = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (id !== null) last = id;
            if (kind === "change" && data && st.ns === ns) changed(JSON.parse(data));
          }
        }
      } catch (error) {
        if (control.signal.aborted) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  async function changed(change) {
    const gone = change.op === "delete" || change.op === "expired" || change.op === "clear";
    if (change.op === "clear") { loadKeys(); } else if (gone) {
      const at = st.keys.findIndex((info) => info.key === change.key);
      if (at >= 0) st.keys.splice(at, 1);
    } else {
      const [record] = await batch([{ op: "get", ns: change.namespace, key: change.key, value: false }]).catch(() => [null]);
      if (st.ns !== change.namespace) return;
      const info = record && { key: change.key, bytes: record.size, updated_at: when(record.updated_at) };
      const at = st.keys.findIndex((item) => item.key === change.key);
      if (at >= 0) st.keys.splice(at, 1);
      if (info && (!st.prefix || change.key.startsWith(st.prefix))) {
        if (st.sort === "updated") st.keys.unshift(info);
        else {
          let where = st.keys.findIndex((item) => item.key > change.key);
          if (where < 0) where = st.complete ? st.keys.length : -1;
          if (where >= 0) st.keys.splice(where, 0, info);
        }
      }
    }
    $("keys-count").textContent = keysCount();
    renderKeys();
    clearTimeout(st.nsTimer);
    st.nsTimer = setTimeout(loadNamespaces, 500);
    if (change.key === st.key || change.op === "clear") {
      await loadEntry(false);  // the editor keeps unsaved text, and the version it came from
      if (st.dirty) {
        const note = $("live-note");
        note.textContent = `${change.actor} changed this key (${change.op}, version ${change.version ?? "-"}) since you began editing; saving will show both values.`;
        note.hidden = false;
      }
      if (st.tab === "history") loadHistory();
    }
  }

  // -- search -----------------------------------------------------------------------------

  function openSearch(query) {
    if (query.get("q")) {
      $("search-q").value = query.get("q");
      $("search-ns").value = query.get("in") || "";
      runSearch();
    }
  }

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    go({ view: "search", q: $("search-q").value, in: $("search-ns").value });
  });

  function highlight(text, words) {
    const node = el("div", { class: "snippet" });
    const stems = words.map((w) => w.toLowerCase().slice(0, Math.max(3, w.length - 2))).filter(Boolean);
    const lower = text.toLowerCase();
    let first = -1;
    for (const stem of stems) { const at = lower.indexOf(stem); if (at >= 0 && (first < 0 || at < first)) first = at; }
    const from = Math.max(0, first - 120);
    const piece = text.slice(from, from + 400);
    const pattern = new RegExp("(" + stems.map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|") + ")[\\p{L}\\p{N}]*", "giu");
    let at = 0;
    if (from > 0) node.append("…");
    for (const match of stems.length ? piece.matchAll(pattern) : []) {
      node.append(piece.slice(at, match.index), el("mark", { text: match[0] }));
      at = match.index + match[0].length;
    }
    node.append(piece.slice(at));
    if (from + 400 < text.length) node.append("…");
    return node;
  }

  function plain(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  async function runSearch() {
    const q = $("search-q").value;
    const where = $("search-ns").value.trim();
    const query = new URLSearchParams({ q, limit: 50 });
    if (where.endsWith("*")) query.set("ns_prefix", where.slice(0, -1));
    else if (where) query.set("ns", where);
    const list = $("search-results");
    list.replaceChildren();
    let hits;
    try {
      hits = (await api("GET", "/v1/search?" + query)).hits;
    } catch (error) {
      say("Search failed: " + error.message, true);
      return;
    }
    const words = (q.match(/[\p{L}\p{N}]+/gu) || []);
    $("search-count").textContent = hits.length ? `${hits.length} hits` : "Nothing matches those words.";
    for (const hit of hits) {
      const item = el("li");
      item.append(el("a", {
        href: `/console?ns=${enc(hit.namespace)}&key=${enc(hit.key)}`,
        onclick: (event) => { event.preventDefault(); go({ ns: hit.namespace, key: hit.key }); },
      }, `${hit.namespace} / ${hit.key}`), el("span", { class: "muted", text: `  score ${hit.score.toFixed(3)}` }));
      if (hit.items) for (const part of hit.items) item.append(highlight(`#${part.position}: ${plain(part.value)}`, words));
      else item.append(highlight(plain(hit.value), words));
      list.append(item);
    }
  }

  // -- admin: audit, tokens, usage; webhooks ------------------------------------------------

  function openAudit() {
    $("audit-rows").replaceChildren();
    st.auditCursor = 0;
    loadAudit();
  }

  $("audit-form").addEventListener("submit", (event) => { event.preventDefault(); openAudit(); });
  $("audit-more").addEventListener("click", () => loadAudit());

  async function loadAudit() {
    const query = new URLSearchParams({ limit: 200, cursor: st.auditCursor });
    for (const [name, id] of [["since", "audit-since"], ["ns_prefix", "audit-prefix"], ["actor", "audit-actor"]]) {
      const value = $(id).value.trim();
      if (value) query.set(name, value);
    }
    try {
      const page = await api("GET", "/v1/audit?" + query);
      for (const c of page.changes) {
        $("audit-rows").append(el("tr", {}, el("td", { text: c.seq }), el("td", { text: when(c.at) }),
          el("td", { text: c.actor }), el("td", { text: c.op + (c.version ? ` → v${c.version}` : "") }),
          el("td", { text: c.namespace }), el("td", { text: c.key ?? "" }), el("td", { text: c.request_id ?? "" })));
      }
      if (!page.changes.length && !st.auditCursor) $("audit-rows").append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No changes in that span." })));
      $("audit-more").hidden = page.changes.length < 200;
      st.auditCursor = page.cursor;
    } catch (error) {
      say("Could not read the audit: " + error.message, true);
    }
  }

  async function openTokens() {
    $("token-made").hidden = true;
    const rows = $("token-rows");
    try {
      const { tokens } = await api("GET", "/v1/tokens");
      rows.replaceChildren();
      for (const t of tokens) {
        const rights = [t.read_only ? "read-only" : "read-write", t.admin ? "admin" : ""].filter(Boolean).join(", ");
        rows.append(el("tr", {}, el("td", { text: t.name }), el("td", { class: "mono", text: t.id }),
          el("td", { text: t.prefixes.join(", ") }), el("td", { text: rights }),
          el("td", { text: t.expires_at ? when(t.expires_at) : "never" }),
          el("td", {}, el("button", {
            type: "button", class: "danger", text: "Revoke", "aria-label": `Revoke token ${t.name} (${t.id})`,
            onclick: async () => {
              if (!(await confirmDialog(`Revoke token ${t.name} (${t.id})? Whoever holds it loses access.`))) return;
              try { await api("DELETE", `/v1/tokens/${enc(t.id)}`); say(`Revoked ${t.name}.`); openTokens(); } catch (error) { say(error.message, true); }
            },
          }))));
      }
    } catch (error) {
      say("Could not list the tokens: " + error.message, true);
    }
  }

  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: $("token-name").value.trim(),
      prefixes: $("token-prefixes").value.split(",").map((p) => p.trim()).filter(Boolean),
      read_only: $("token-read-only").checked, admin: $("token-admin").checked,
    };
    try {
      const made = await api("POST", "/v1/tokens", body);
      await openTokens();
      $("token-made-value").textContent = made.token;
      $("token-made").hidden = false;
      $("token-form").reset();
    } catch (error) {
      say("Not created: " + error.message, true);
    }
  });

  async function openQuota() {
    const limits = me.quotas || {};
    $("quota-limits").textContent = `Quotas per namespace: ${limits.writes_per_day ?? "no"} writes a day, ${limits.bytes ? bytes(limits.bytes) : "no byte limit"}.`;
    try {
      const { namespaces } = await api("GET", "/v1/namespaces");
      const rows = $("quota-rows");
      rows.replaceChildren();
      for (const n of namespaces) {
        const share = (used, limit) => limit ? ` (${Math.round((100 * used) / limit)}%)` : "";
        rows.append(el("tr", {}, el("td", { text: n.namespace }), el("td", { text: n.keys }),
          el("td", { text: bytes(n.bytes) + share(n.bytes, limits.bytes) }),
          el("td", { text: n.writes_today + share(n.writes_today, limits.writes_per_day) })));
      }
    } catch (error) {
      say("Could not read the usage: " + error.message, true);
    }
  }

  async function openWebhooks() {
    $("webhook-made").hidden = true;
    $("webhook-form").hidden = Boolean(me.read_only);
    try {
      const { webhooks } = await api("GET", "/v1/webhooks");
      const rows = $("webhook-rows");
      rows.replaceChildren();
      for (const w of webhooks) {
        const actions = el("td");
        if (!me.read_only) {
          actions.append(el("button", {
            type: "button", class: "danger", text: "Remove", "aria-label": `Remove webhook ${w.id}`,
            onclick: async () => {
              if (!(await confirmDialog(`Stop delivering changes to ${w.url}?`))) return;
              try { await api("DELETE", `/v1/webhooks/${enc(w.id)}`); openWebhooks(); } catch (error) { say(error.message, true); }
            },
          }));
        }
        rows.append(el("tr", {}, el("td", { class: "mono", text: w.id }), el("td", { text: w.url }),
          el("td", { text: w.ns_prefix || "(all)" }), el("td", { text: w.creator }), actions));
      }
      if (!webhooks.length) rows.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No webhooks." })));
    } catch (error) {
      say("Could not list the webhooks: " + error.message, true);
    }
  }

  $("webhook-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/v1/webhooks", { url: $("webhook-url").value, ns_prefix: $("webhook-prefix").value });
      await openWebhooks();
      $("webhook-made-value").textContent = made.secret;
      $("webhook-made").hidden = false;
      $("webhook-form").reset();
    } catch (error) {
      say("Not added: " + error.message, true);
    }
  });

  window.addEventListener("resize", () => requestAnimationFrame(renderKeys));
  start();
})();
