// The page's style sheet (served as /ui/app.css: the CSP allows no inline styles).
export const PAGE_STYLE = `
:root { --accent: #0078d4; --border: #d6d6d6; --muted: #605e5c; --ok: #107c10; --bad: #a4262c; --bg: #faf9f8; }
[hidden] { display: none !important; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 "Segoe UI", system-ui, -apple-system, sans-serif; color: #201f1e; background: var(--bg); }
.top { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: var(--accent); color: #fff; }
.brand { font-weight: 600; font-size: 16px; }
.hub { font-family: ui-monospace, Consolas, monospace; opacity: 0.9; }
.live { margin-left: auto; font-size: 12px; padding: 2px 8px; border-radius: 10px; background: rgba(255,255,255,0.2); }
.live[data-state="live"]::before { content: "\\25CF  "; color: #9fe79f; }
.notice { margin: 16px 20px; padding: 12px 16px; border: 1px solid #c8a600; background: #fff4ce; border-radius: 4px; }
main { padding: 8px 20px 40px; display: grid; gap: 16px; }
.panel { background: #fff; border: 1px solid var(--border); border-radius: 4px; padding: 12px 16px; overflow-x: auto; }
h2 { font-size: 18px; margin: 0 0 8px; font-weight: 600; }
h3 { font-size: 15px; margin: 12px 0 6px; font-weight: 600; }
h4 { font-size: 13px; margin: 10px 0 4px; font-weight: 600; }
.muted { color: var(--muted); font-weight: normal; }
.grid { border-collapse: collapse; width: 100%; }
.grid th, .grid td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--border); vertical-align: top; }
.grid th { font-weight: 600; color: var(--muted); font-size: 12px; }
#devices tr { cursor: pointer; }
#devices tr:hover { background: #f3f2f1; }
#devices tr[aria-selected="true"] { background: #deecf9; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; border: 1px solid currentColor; }
.badge.ok { color: var(--ok); }
.badge.bad { color: var(--bad); }
.badge.off { color: var(--muted); }
.mono, pre, textarea, code { font-family: ui-monospace, Consolas, "Cascadia Mono", monospace; font-size: 12.5px; }
.columns { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 24px; }
@media (max-width: 900px) { .columns { grid-template-columns: minmax(0, 1fr); } }
pre { margin: 0; padding: 8px; background: #f3f2f1; border-radius: 3px; white-space: pre-wrap; word-break: break-word; }
.telemetry { list-style: none; margin: 0; padding: 0; max-height: 520px; overflow-y: auto; }
.telemetry li { border-bottom: 1px solid var(--border); padding: 6px 0; }
.telemetry .when { font-size: 12px; color: var(--muted); }
.telemetry .props { margin: 2px 0 4px; font-size: 12px; }
.telemetry .props span { display: inline-block; margin-right: 10px; }
.version { font-weight: normal; color: var(--muted); font-family: ui-monospace, Consolas, monospace; }
textarea { width: 100%; padding: 8px; border: 1px solid var(--border); border-radius: 3px; resize: vertical; }
.actions { display: flex; gap: 12px; align-items: center; margin-top: 6px; }
button { background: var(--accent); color: #fff; border: 0; border-radius: 3px; padding: 6px 14px; font: inherit; cursor: pointer; }
button:disabled { opacity: 0.6; cursor: default; }
.error { color: var(--bad); white-space: pre-wrap; margin: 6px 0 0; }
.commands { margin-top: 12px; border-top: 1px solid var(--border); padding-top: 4px; }
.command label { display: block; font-weight: 600; font-size: 13px; margin: 8px 0 3px; }
.command .field-row { display: flex; gap: 10px; align-items: center; margin-top: 8px; }
.command .field-row label { margin: 0; min-width: 150px; }
.command input, .command select { font: inherit; padding: 4px 8px; border: 1px solid var(--border); border-radius: 3px; flex: 1; min-width: 0; }
.command input[type="number"] { flex: 0 0 90px; }
.sent { list-style: none; margin: 0; padding: 0; max-height: 320px; overflow-y: auto; }
.sent li { border-bottom: 1px solid var(--border); padding: 6px 0; }
.sent .head { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; font-size: 12px; }
.sent pre { margin-top: 4px; }
.badge.pending { color: var(--accent); }
details summary { cursor: pointer; color: var(--accent); font-size: 12px; }
`;
