"use strict";
(() => {
	const $ = (id) => document.getElementById(id);
	const el = (tag, cls, text) => {
		const e = document.createElement(tag);
		if (cls) e.className = cls;
		if (text !== undefined) e.textContent = text;
		return e;
	};

	// Columns in the order shown; any other field a row carries follows.
	const dptFirst = ["port", "node", "address", "ready", "state", "health", "tsr", "weight", "effective_weight", "active_conns", "total_conns"];
	const crtFirst = ["client", "vipa", "port", "node", "address", "since", "bytes_to_target", "bytes_to_client", "reason"];
	const labels = {
		vipa: "VIPA", port: "Port", node: "Node", address: "Address", ready: "Ready", state: "State", health: "Health",
		tsr: "TSR", weight: "Weight", effective_weight: "Eff. weight", active_conns: "Active", total_conns: "Total",
		client: "Client", since: "Since", bytes_to_target: "To target", bytes_to_client: "To client", reason: "Reason",
	};
	const bars = new Set(["active_conns", "total_conns"]);
	const badges = new Set(["state", "health", "status"]);
	const byteFields = new Set(["bytes_to_target", "bytes_to_client"]);
	const good = new Set(["alive", "active", "healthy"]);
	const bad = new Set(["failed", "unhealthy", "left", "none"]);

	const label = (k) => labels[k] || k.replace(/_/g, " ");
	const tone = (v) => good.has(v) ? "ok" : bad.has(v) ? "bad" : "warn";

	function columns(rows, first, skip) {
		const seen = new Set();
		for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
		const out = first.filter((k) => seen.has(k));
		for (const k of seen) if (!out.includes(k) && !skip.includes(k)) out.push(k);
		return out;
	}

	function bytes(n) {
		const units = ["B", "KiB", "MiB", "GiB", "TiB"];
		let i = 0;
		while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
		return (i ? n.toFixed(1) : String(n)) + " " + units[i];
	}

	function text(k, v) {
		if (v === null || v === undefined || v === "") return "–";
		if (Array.isArray(v)) return v.length ? v.map((x) => text("", x)).join(", ") : "–";
		if (typeof v === "object") return JSON.stringify(v);
		if (byteFields.has(k) && typeof v === "number") return bytes(v);
		return String(v);
	}

	function cell(k, v, max) {
		const td = el("td");
		td.dataset.label = label(k);
		td.dataset.field = k;
		if (bars.has(k) && typeof v === "number") {
			td.className = "num";
			const bar = el("span", k === "total_conns" ? "bar total" : "bar");
			const fill = el("span", "fill");
			fill.style.width = (max > 0 ? Math.max(100 * v / max, v > 0 ? 2 : 0) : 0).toFixed(1) + "%";
			bar.append(fill);
			td.append(el("span", "n", String(v)), bar);
		} else if (badges.has(k) && typeof v === "string" && v !== "") {
			td.append(el("span", "badge " + tone(v), v));
		} else {
			td.textContent = text(k, v);
		}
		return td;
	}

	function fillTable(table, rows, cols) {
		const max = {};
		for (const c of cols) if (bars.has(c)) max[c] = Math.max(0, ...rows.map((r) => typeof r[c] === "number" ? r[c] : 0));
		const head = el("tr");
		for (const c of cols) head.append(el("th", "", label(c)));
		const body = el("tbody");
		for (const r of rows) {
			const tr = el("tr");
			if (r.node !== undefined) tr.dataset.node = String(r.node);
			if (r.port !== undefined) tr.dataset.port = String(r.port);
			for (const c of cols) tr.append(cell(c, r[c], max[c]));
			body.append(tr);
		}
		const thead = el("thead");
		thead.append(head);
		table.replaceChildren(thead, body);
	}

	function matches(row, filter) {
		if (!filter) return true;
		return Object.values(row).some((v) => text("", v).toLowerCase().includes(filter));
	}

	function ipKey(ip) {
		const p = String(ip).split(".");
		return p.length === 4 ? p.map((x) => x.padStart(3, "0")).join(".") : String(ip);
	}

	// ports writes runs of consecutive ports as ranges: 8080, 9000–9009.
	function ports(list) {
		if (!Array.isArray(list) || !list.length) return text("", list);
		const p = [...list].sort((a, b) => a - b);
		const out = [];
		for (let i = 0; i < p.length; i++) {
			let j = i;
			while (j + 1 < p.length && p[j + 1] === p[j] + 1) j++;
			out.push(j > i ? `${p[i]}–${p[j]}` : String(p[i]));
			i = j;
		}
		return out.join(", ");
	}

	function fact(dl, name, value) {
		const d = el("div");
		d.append(el("dt", "", name), el("dd", "", value));
		dl.append(d);
	}

	function renderMembers(members) {
		const items = [...members].sort((a, b) => String(a.name).localeCompare(String(b.name))).map((m) => {
			const li = el("li");
			li.dataset.member = m.name;
			li.append(el("strong", "", text("", m.name)), el("span", "ip muted", text("", m.address)), el("span", "badge " + tone(m.status), text("", m.status)));
			return li;
		});
		if (!items.length) items.push(el("li", "empty", "No fleet: the vipadynamic app is not running here."));
		$("members").replaceChildren(...items);
		const alive = members.filter((m) => m.status === "alive").length;
		$("fleet-count").textContent = members.length ? `${alive} of ${members.length} alive` : "";
	}

	function renderVIPAs(s, filter) {
		const groups = new Map();
		for (const d of s.definitions || []) groups.set(d.vipa, { def: d, rows: [] });
		for (const r of s.dpt || []) {
			if (!groups.has(r.vipa)) groups.set(r.vipa, { def: null, rows: [] });
			groups.get(r.vipa).rows.push(r);
		}
		const dyn = new Map((s.vipadyn || []).map((v) => [v.vipa, v]));
		const out = [];
		for (const [vipa, g] of [...groups].sort((a, b) => ipKey(a[0]).localeCompare(ipKey(b[0])))) {
			const art = el("article", "vipa");
			art.dataset.vipa = vipa;
			const h = el("h2");
			h.append(el("span", "ip", vipa));
			const ready = g.rows.reduce((n, r) => n + (typeof r.ready === "number" ? r.ready : 0), 0);
			const active = g.rows.reduce((n, r) => n + (typeof r.active_conns === "number" ? r.active_conns : 0), 0);
			h.append(el("span", "muted", `${g.rows.length} DPT rows · ${ready} ready · ${active} active`));
			art.append(h);
			const dl = el("dl", "facts");
			const d = g.def;
			if (d) {
				fact(dl, "Ports", ports(d.ports));
				fact(dl, "Method", text("", d.distmethod));
				fact(dl, "Routing node", text("", d.routing_node));
				fact(dl, "Destinations", text("", d.destip));
			} else {
				fact(dl, "Rows", "this node's own report");
			}
			const v = dyn.get(vipa);
			if (v) {
				if (v.owner !== undefined) fact(dl, "Owner", text("", v.owner));
				if (v.status !== undefined) fact(dl, "Status", text("", v.status));
			}
			art.append(dl);
			if (d && d.conflict) art.append(el("p", "conflict", "Conflict: " + d.conflict));
			const rows = g.rows.filter((r) => matches(r, filter)).sort((a, b) => (a.port - b.port) || String(a.node).localeCompare(String(b.node)));
			if (rows.length) {
				const wrap = el("div", "scroll");
				const table = el("table", "dpt");
				fillTable(table, rows, columns(rows, dptFirst, ["vipa"]));
				wrap.append(table);
				art.append(wrap);
			} else {
				art.append(el("p", "empty", g.rows.length ? "No row matches the filter." : "No target has an application listening."));
			}
			out.push(art);
		}
		if (!out.length) out.push(el("section", "empty", "This node knows no VIPA."));
		$("vipas").replaceChildren(...out);
	}

	function renderConns(s, filter) {
		const rows = (s.crt || []).filter((r) => matches(r, filter));
		const total = s.crt_total || 0;
		$("crt-count").textContent = total ? `${(s.crt || []).length} of ${total} live` : "";
		if (!rows.length) {
			const tb = el("tbody");
			const tr = el("tr");
			const td = el("td", "empty", total ? "No connection matches the filter." : "No live connection.");
			tr.append(td);
			tb.append(tr);
			$("crt").replaceChildren(tb);
			return;
		}
		fillTable($("crt"), rows, columns(rows, crtFirst, []));
	}

	let snap = null;
	let queued = false;
	function render() {
		queued = false;
		if (!snap) return;
		const filter = $("filter").value.trim().toLowerCase();
		renderMembers(snap.members || []);
		renderVIPAs(snap, filter);
		renderConns(snap, filter);
		$("updated").textContent = "updated " + new Date().toLocaleTimeString();
	}
	function queue() {
		if (queued) return;
		queued = true;
		if (document.hidden) setTimeout(render, 0);
		else requestAnimationFrame(render);
	}

	$("filter").addEventListener("input", queue);
	const live = $("live");
	const events = new EventSource(location.pathname + "?events");
	events.onopen = () => { live.textContent = "live"; live.className = "badge ok"; };
	events.onerror = () => { live.textContent = "reconnecting"; live.className = "badge warn"; };
	events.onmessage = (e) => {
		snap = JSON.parse(e.data);
		queue();
	};
})();
