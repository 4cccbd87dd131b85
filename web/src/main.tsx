/**
 * The web chat client: sign in, threads (list, create, rename, archive, delete), a thread's
 * history with live updates and streamed replies, and a diagnostics panel. State and actions live
 * in store.ts; the API contract in api.ts; the resumable WebSocket in live.ts.
 */
import { render } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import {
  completeOidcSignIn,
  loadConfig,
  localSignIn,
  oidcSignIn,
  signOut,
  storedToken,
  subjectOf,
  useToken,
} from "./auth.ts";
import type { ClientConfig } from "./config.ts";
import { type ArchivedFilter, type Shown, Store } from "./store.ts";

/** Re-renders the component whenever the store changes. */
const useStore = (store: Store): void => {
  const [, setTick] = useState(0);
  useEffect(() => store.subscribe(() => setTick((n) => n + 1)), [store]);
};

const time = (ms: number): string =>
  new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

// ---------------------------------------------------------------- sign-in

const SignIn = ({ config, onSignedIn }: { config: ClientConfig; onSignedIn: () => void }) => {
  const [user, setUser] = useState("");
  const [pasted, setPasted] = useState("");
  const [error, setError] = useState<string | null>(null);
  const userField = useRef<HTMLInputElement>(null);
  // The one field of the page: typing starts there.
  useEffect(() => userField.current?.focus(), []);
  const auth = config.auth;
  const signInLocal = async (e: Event) => {
    e.preventDefault();
    if (auth.mode !== "local" || user.trim() === "") return;
    try {
      await localSignIn(auth, user.trim());
      onSignedIn();
    } catch (err) {
      setError(String(err));
    }
  };
  const usePasted = (e: Event) => {
    e.preventDefault();
    if (subjectOf(pasted) === null) {
      setError("That is not a valid, unexpired JWT.");
      return;
    }
    useToken(pasted);
    onSignedIn();
  };
  return (
    <main class="signin">
      <h1>Chat</h1>
      {auth.mode === "local" && (
        <form onSubmit={signInLocal} aria-label="Sign in with a development token">
          <label for="user">User name</label>
          <input
            id="user"
            name="user"
            ref={userField}
            autocomplete="username"
            value={user}
            onInput={(e) => setUser(e.currentTarget.value)}
            placeholder="alice"
            required
          />
          <button type="submit">Sign in</button>
          <p class="hint">The local stack signs a development token for this name.</p>
        </form>
      )}
      {auth.mode === "oidc" && (
        <button type="button" onClick={() => void oidcSignIn(auth)}>
          Sign in with your account
        </button>
      )}
      <details>
        <summary>Paste a token instead</summary>
        <form onSubmit={usePasted}>
          <label for="token">Bearer token (JWT)</label>
          <textarea id="token" rows={3} value={pasted} onInput={(e) => setPasted(e.currentTarget.value)} />
          <button type="submit">Use this token</button>
        </form>
      </details>
      {error && (
        <p role="alert" class="error">
          {error}
        </p>
      )}
    </main>
  );
};

// ---------------------------------------------------------------- threads

const ThreadList = ({ store }: { store: Store }) => {
  const [title, setTitle] = useState("");
  const [agent, setAgent] = useState("");
  const create = async (e: Event) => {
    e.preventDefault();
    await store.createThread(title, agent);
    setTitle("");
  };
  return (
    <nav class="threads" aria-label="Threads">
      <form onSubmit={create} class="new-thread">
        <label for="new-title" class="visually-hidden">
          New thread title
        </label>
        <input
          id="new-title"
          placeholder="New thread title"
          value={title}
          onInput={(e) => setTitle(e.currentTarget.value)}
        />
        <label for="new-agent" class="visually-hidden">
          Agent that answers (optional)
        </label>
        <input
          id="new-agent"
          placeholder="Agent that answers (e.g. demo)"
          value={agent}
          onInput={(e) => setAgent(e.currentTarget.value)}
        />
        <button type="submit">New thread</button>
      </form>
      <label for="archived-filter">Show</label>{" "}
      <select
        id="archived-filter"
        value={store.archived}
        onChange={(e) => void store.setArchivedFilter(e.currentTarget.value as ArchivedFilter)}
      >
        <option value="false">Active threads</option>
        <option value="true">Archived threads</option>
        <option value="any">All threads</option>
      </select>
      <ul>
        {store.threads.map((t) => (
          <li key={t.id}>
            <button
              type="button"
              class={`thread ${t.id === store.selected ? "selected" : ""}`}
              aria-current={t.id === store.selected ? "page" : undefined}
              onClick={() => void store.open(t.id)}
            >
              <span class="title">{t.title ?? "Untitled thread"}</span>
              {t.archived && <span class="badge">archived</span>}
            </button>
          </li>
        ))}
      </ul>
      {store.threads.length === 0 && <p class="hint">No threads yet.</p>}
      {store.threadsCursor !== null && (
        <button type="button" onClick={() => void store.loadThreads(true)}>
          More threads
        </button>
      )}
    </nav>
  );
};

const ThreadHeader = ({ store }: { store: Store }) => {
  const thread = store.thread;
  const [editing, setEditing] = useState(false);
  const [title, setTitle] = useState("");
  if (thread === undefined) return null;
  const save = async (e: Event) => {
    e.preventDefault();
    await store.rename(thread.id, title);
    setEditing(false);
  };
  const remove = () => {
    if (
      confirm(`Delete "${thread.title ?? "Untitled thread"}" and all its messages? This cannot be undone.`)
    ) {
      void store.remove(thread.id);
    }
  };
  return (
    <header class="thread-header">
      {editing ? (
        <form onSubmit={save} class="rename">
          <label for="rename" class="visually-hidden">
            Thread title
          </label>
          <input id="rename" value={title} onInput={(e) => setTitle(e.currentTarget.value)} />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <h2>{thread.title ?? "Untitled thread"}</h2>
      )}
      <div class="actions">
        {!editing && (
          <button
            type="button"
            onClick={() => {
              setTitle(thread.title ?? "");
              setEditing(true);
            }}
          >
            Rename
          </button>
        )}
        <button type="button" onClick={() => void store.setArchived(thread.id, !thread.archived)}>
          {thread.archived ? "Unarchive" : "Archive"}
        </button>
        <button type="button" class="danger" onClick={remove}>
          Delete
        </button>
      </div>
    </header>
  );
};

// ---------------------------------------------------------------- messages

const MessageItem = ({ store, m }: { store: Store; m: Shown }) => {
  const rating = store.feedback.get(m.id);
  const streaming = m.state === "streaming";
  return (
    <li
      class={`message ${m.role} ${m.sending ?? ""}`}
      data-message-id={m.id}
      data-state={m.state ?? "complete"}
    >
      <div class="meta">
        <span class="who">{m.role === "user" ? m.user_id || "you" : m.role}</span>
        <span class="when">{time(m.created_at_ms)}</span>
        {streaming && <span class="badge live">streaming…</span>}
        {m.state === "cancelled" && <span class="badge">stopped</span>}
        {m.state === "error" && (
          <span class="badge">{m.finish_reason === "timeout" ? "timed out" : "error"}</span>
        )}
        {m.sending === "pending" && <span class="badge">sending…</span>}
      </div>
      <p class="content">{m.content}</p>
      {m.sending === "failed" && (
        <p class="error" role="alert">
          Not sent: {m.error}{" "}
          <button type="button" onClick={() => void store.retry(m.id)}>
            Retry
          </button>
        </p>
      )}
      {m.role === "assistant" && streaming && (
        <button type="button" class="stop" onClick={() => void store.stopReply(m.id)}>
          Stop
        </button>
      )}
      {m.role === "assistant" && !streaming && m.sending === undefined && (
        <fieldset class="feedback">
          <legend class="visually-hidden">Rate this reply</legend>
          <button type="button" aria-pressed={rating === "up"} onClick={() => void store.rate(m.id, "up")}>
            Good reply
          </button>
          <button
            type="button"
            aria-pressed={rating === "down"}
            onClick={() => void store.rate(m.id, "down")}
          >
            Bad reply
          </button>
        </fieldset>
      )}
    </li>
  );
};

const ThreadView = ({ store }: { store: Store }) => {
  const [text, setText] = useState("");
  const list = useRef<HTMLDivElement>(null);
  const ordered = store.ordered;
  const last = ordered.at(-1);
  const stick = useRef(true);
  // Follow the newest message while the reader is at the bottom; keep the place when older load.
  useLayoutEffect(() => {
    const el = list.current;
    if (el !== null && stick.current) el.scrollTop = el.scrollHeight;
  }, [last?.id, last?.content, ordered.length]);
  const onScroll = () => {
    const el = list.current;
    if (el === null) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 60) void store.loadOlder();
  };
  const send = (e: Event) => {
    e.preventDefault();
    const body = text;
    setText("");
    stick.current = true;
    void store.send(body);
  };
  if (store.selected === null) {
    return (
      <section class="empty" aria-label="No thread open">
        <p>Pick a thread, or start a new one.</p>
      </section>
    );
  }
  return (
    <section class="conversation" aria-label="Conversation">
      <ThreadHeader store={store} />
      <div class="messages" ref={list} onScroll={onScroll}>
        {store.olderCursor !== null && (
          <button
            type="button"
            class="older"
            onClick={() => void store.loadOlder()}
            disabled={store.loadingOlder}
          >
            {store.loadingOlder ? "Loading…" : "Load older messages"}
          </button>
        )}
        <ol aria-live="polite" aria-relevant="additions text">
          {ordered.map((m) => (
            <MessageItem key={m.id} store={store} m={m} />
          ))}
        </ol>
      </div>
      <form class="composer" onSubmit={send}>
        <label for="composer" class="visually-hidden">
          Message
        </label>
        <textarea
          id="composer"
          rows={2}
          placeholder="Write a message (Enter sends, Shift+Enter is a new line)"
          value={text}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) send(e);
          }}
        />
        <button type="submit" disabled={text.trim() === ""}>
          Send
        </button>
      </form>
    </section>
  );
};

// ---------------------------------------------------------------- diagnostics

const Diagnostics = ({ store }: { store: Store }) => (
  <aside class="diagnostics" aria-label="Diagnostics">
    <h2>Diagnostics</h2>
    <p>
      Connection: <strong data-connection={store.connection}>{store.connection}</strong>
    </p>
    <h3>
      Health{" "}
      <button type="button" onClick={() => void store.refreshHealth()}>
        Refresh
      </button>
    </h3>
    {store.health && (
      <ul>
        <li>
          API: <strong>{store.health.status}</strong>
        </li>
        {Object.entries(store.health.tiers ?? {}).map(([name, tier]) => (
          <li key={name}>
            {name}: {tier.status}
            {tier.latency_ms !== undefined ? ` (${tier.latency_ms} ms)` : ""}
          </li>
        ))}
      </ul>
    )}
    {store.healthError && <p class="error">Health: {store.healthError}</p>}
    <h3>Last sends (Server-Timing, ms)</h3>
    <table>
      <thead>
        <tr>
          <th scope="col">status</th>
          <th scope="col">cache</th>
          <th scope="col">queue</th>
          <th scope="col">total</th>
        </tr>
      </thead>
      <tbody>
        {store.sends.map((s) => (
          <tr key={s.at}>
            <td>
              {s.status}
              {s.durability ? ` ${s.durability}` : ""}
            </td>
            <td>{s.timing.cache ?? "–"}</td>
            <td>{s.timing.sqs ?? s.timing.db ?? "–"}</td>
            <td>{s.timing.total ?? "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  </aside>
);

// ---------------------------------------------------------------- the page

const Chat = ({ config, onSignOut }: { config: ClientConfig; onSignOut: () => void }) => {
  const store = useMemo(() => new Store(config, storedToken), [config]);
  const [showDiagnostics, setShowDiagnostics] = useState(false);
  useStore(store);
  useEffect(() => {
    store.start();
    (window as unknown as { chat: Store }).chat = store;
    return () => store.stop();
  }, [store]);
  const offline = !store.browserOnline || store.connection !== "online";
  return (
    <div class="app">
      <header class="top">
        <h1>Chat</h1>
        <span class="user">{subjectOf(storedToken() ?? "") ?? ""}</span>
        <button
          type="button"
          aria-expanded={showDiagnostics}
          onClick={() => setShowDiagnostics(!showDiagnostics)}
        >
          Diagnostics
        </button>
        <button
          type="button"
          onClick={() => {
            store.stop();
            signOut();
            onSignOut();
          }}
        >
          Sign out
        </button>
      </header>
      {offline && (
        <div class="banner offline" role="status">
          {store.connection === "connecting"
            ? "Connecting…"
            : "Offline — reconnecting; nothing will be missed."}
        </div>
      )}
      {store.notice && (
        <div class="banner notice" role="alert">
          {store.notice}{" "}
          <button type="button" onClick={() => store.dismissNotice()}>
            Dismiss
          </button>
        </div>
      )}
      <div class="layout">
        <ThreadList store={store} />
        <ThreadView store={store} />
        {showDiagnostics && <Diagnostics store={store} />}
      </div>
    </div>
  );
};

const App = () => {
  const [config, setConfig] = useState<ClientConfig | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [signedIn, setSignedIn] = useState(false);
  useEffect(() => {
    loadConfig()
      .then(async (c) => {
        await completeOidcSignIn(c.auth);
        setConfig(c);
        setSignedIn(subjectOf(storedToken() ?? "") !== null);
      })
      .catch((e: unknown) => setError(String(e)));
  }, []);
  if (error !== null)
    return (
      <p role="alert" class="error">
        {error}
      </p>
    );
  if (config === null) return <p>Loading…</p>;
  return signedIn ? (
    <Chat config={config} onSignOut={() => setSignedIn(false)} />
  ) : (
    <SignIn config={config} onSignedIn={() => setSignedIn(true)} />
  );
};

render(<App />, document.getElementById("app") as HTMLElement);
