#!/usr/bin/env node
// Differential test of bridge/modem/pdu*.c against node-pdu (pinned in
// package.json). Usage: node pdu-diff.js <pdu_diff binary> [seed] [count]
//
// For every random text of `pdu_diff gen`:
//   A. our PDUs, parsed by node-pdu: same text, address, concatenation
//      (8-bit reference, total, sequence), alphabet, time stamp;
//   B. node-pdu's PDUs for the same text and address, decoded by
//      `pdu_diff check` (our pdu_decode): same text per part, address,
//      concatenation (node-pdu uses the 16-bit reference IE), time.
//
// node-pdu 2.1.1 quirks, each handled where it shows up below; none of
// them is excluded from the comparison:
//  1. Its GSM table has '`' at 0x5F where 23.038 has '§' (U+00A7), in both
//     directions: it reads our 0x5F as '`', and writes '`' as 0x5F.
//  2. Its encoder picks UCS-2 only when some UTF-16 unit is above 0xC0
//     (Data.checkData). Otherwise it writes 7-bit, and a character missing
//     from its tables (` is 0x5F, see 1; § c-cedilla (c) DEL ... become a
//     space) no longer reaches the PDU. The expected text of each part is
//     then what the PDU really holds, by 23.038 ("lossy" below).
//  3. It splits a 7-bit text every 133 characters (140 - 7, counting
//     characters, not septets), so a text with extension characters can get
//     a TP-UDL above 160 septets (and above 255 a 3-digit hex length).
//     Those PDUs are invalid: pdu_decode must reject them ("over-long").
//  4. It splits UCS-2 every 63 UTF-16 units and may cut a surrogate pair in
//     two. Each half is then an unpaired surrogate, which pdu_decode turns
//     into U+FFFD; the expected text of each part is built the same way
//     (Buffer.from(partText) maps a lone surrogate to U+FFFD) ("split
//     pairs").
//  5. SCTS: new SCTS(date, 0) takes the machine's time zone (0 is falsy);
//     TZ=UTC is set before anything reads a Date.
//  6. Its type detection of addresses (see random_addr() in pdu_diff.c)
//     and its missing page-break entry (U+000C): not generated.
'use strict';

process.env.TZ = 'UTC';

const { spawnSync } = require('child_process');
const { Submit, Deliver, parse, utils } = require('node-pdu');

const [bin, seedArg, countArg] = process.argv.slice(2);
if (!bin) {
	console.error('usage: node pdu-diff.js <pdu_diff binary> [seed] [count]');
	process.exit(2);
}
const seed = seedArg || '20261121';
const count = Number(countArg || 10000);

// node-pdu draws the 16-bit concatenation reference from Math.random():
// seeded here so that a run repeats exactly.
let mState = Number(BigInt(seed) & 0xffffffffn) >>> 0;
Math.random = () => {
	mState = (mState + 0x6d2b79f5) >>> 0;
	let t = mState;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const GSM_BASIC =
	'@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXT = '^{}\\[~]|€';
const NODE_BASIC = utils.Helper.ALPHABET_7BIT;
const NODE_EXT = utils.Helper.EXTENDED_TABLE;
if (NODE_BASIC.length !== 128 || [...NODE_BASIC].filter((ch, i) => ch !== GSM_BASIC[i]).join('') !== '`')
	throw new Error('node-pdu GSM table changed: revisit quirk 1');

// What a character of a 7-bit node-pdu text becomes in the PDU, read by
// 23.038 (quirks 1 and 2).
function nodeSeptetChar(ch) {
	const i = NODE_BASIC.indexOf(ch);
	if (i >= 0) return GSM_BASIC[i];
	if (ch !== '`' && NODE_EXT.includes(ch)) return ch;
	return ' ';
}

function run(args, input) {
	const r = spawnSync(bin, args, { input, maxBuffer: 1 << 30, encoding: 'utf8' });
	if (r.error) throw r.error;
	if (r.status !== 0) {
		console.error(r.stderr);
		throw new Error(`${bin} ${args.join(' ')}: exit ${r.status}`);
	}
	return r.stdout;
}

const hexToUtf8 = (h) => (h === '-' ? '' : Buffer.from(h, 'hex').toString('utf8'));
const utf8Hex = (s) => (s.length ? Buffer.from(s, 'utf8').toString('hex').toUpperCase() : '-');

function isoTime(ts, tz) {
	const d = new Date((ts + tz * 60) * 1000).toISOString().slice(0, 19);
	const a = Math.abs(tz);
	const hh = String(Math.floor(a / 60)).padStart(2, '0');
	const mm = String(a % 60).padStart(2, '0');
	return `${d}${tz < 0 ? '-' : '+'}${hh}:${mm}`;
}

function addrKind(addr) {
	if (/^\+\d+$/.test(addr)) return { phone: addr.slice(1), type: utils.SCAType.TYPE_INTERNATIONAL };
	if (/^\d+$/.test(addr)) return { phone: addr, type: utils.SCAType.TYPE_UNKNOWN };
	return { phone: addr, type: utils.SCAType.TYPE_ALPHANUMERICAL };
}

// A: our PDUs through node-pdu's parser. Returns an error string or null.
function checkOurs(c) {
	const addr = addrKind(c.addr);
	let text = '';
	for (let k = 0; k < c.pdus.length; k++) {
		let p;
		try {
			p = parse(c.pdus[k]);
		} catch (e) {
			return `part ${k + 1}: node-pdu cannot parse: ${e.message}`;
		}
		if (!(p instanceof (c.deliver ? Deliver : Submit))) return `part ${k + 1}: wrong type`;
		if (p.address.phone !== addr.phone || p.address.type.type !== addr.type)
			return `part ${k + 1}: address ${p.address.phone}/${p.address.type.type}`;
		const ucs2 = p.dataCodingScheme.textAlphabet === utils.DCS.ALPHABET_UCS2;
		if (ucs2 !== (c.alphabet === 'U')) return `part ${k + 1}: alphabet`;
		const h = p.data.parts[0].header;
		if (c.pdus.length > 1) {
			if (!h || h.getType() !== utils.Header.IE_CONCAT_8BIT_REF) return `part ${k + 1}: no 8-bit concat IE`;
			if (h.getPointer() !== c.ref || h.getSegments() !== c.pdus.length || h.getCurrent() !== k + 1)
				return `part ${k + 1}: concat ${JSON.stringify(h.toJSON())}`;
		} else if (h) {
			return 'single part with a UDH';
		}
		if (c.deliver) {
			const s = p.serviceCenterTimeStamp;
			if (s.time !== c.ts || s.tzOff !== c.tz) return `part ${k + 1}: SCTS ${s.time} ${s.tzOff}`;
		}
		text += p.data.getText();
	}
	// Quirk 1: node-pdu reads 0x5F as '`'.
	const want = c.alphabet === 'G' ? c.text.replace(/§/g, '`') : c.text;
	if (want !== c.text) stats.sectionSign++;
	if (text !== want) return `text differs: ${JSON.stringify(text)}`;
	return null;
}

const stats = { lossy: 0, overlong: 0, splitPairs: 0, nodeParts: 0, sectionSign: 0 };

// B: node-pdu's PDUs for the same input, as a line for `pdu_diff check`.
function nodeLine(c) {
	const unicode = [...c.text].some((ch) => ch.charCodeAt(0) > 0xc0);
	const seen = (t) => (unicode ? t : [...t].map(nodeSeptetChar).join(''));
	if (seen(c.text) !== c.text) stats.lossy++;
	const pdu = c.deliver
		? new Deliver(c.addr, c.text, { serviceCenterTimeStamp: new utils.SCTS(new Date(c.ts * 1000), c.tz) })
		: new Submit(c.addr, c.text);
	const parts = pdu.getParts();
	const strings = pdu.getPartStrings();
	const fields = [];
	for (let k = 0; k < parts.length; k++) {
		const part = parts[k];
		const units = part.text;
		const first = units.charCodeAt(0);
		if (k > 0 && first >= 0xdc00 && first <= 0xdfff) stats.splitPairs++;
		// Quirk 3: TP-UDL past 160 septets / 140 octets.
		const overlong = unicode ? part.size > 140 : part.size > 160;
		if (overlong) stats.overlong++;
		fields.push(strings[k], overlong ? '!' : utf8Hex(seen(units)));
	}
	stats.nodeParts += parts.length;
	const ref = parts.length > 1 ? parts[0].header.getPointer() : 0;
	return [
		c.id,
		c.deliver ? 'D' : 'S',
		utf8Hex(c.addr),
		c.deliver ? isoTime(c.ts, c.tz) : '-',
		parts.length,
		ref,
		...fields
	].join(' ');
}

function main() {
	const t0 = Date.now();
	const cases = run(['gen', seed, String(count)])
		.split('\n')
		.filter((l) => l.startsWith('C '))
		.map((l) => {
			const t = l.split(' ');
			const n = Number(t[9]);
			return {
				id: t[1],
				deliver: t[2] === 'D',
				addr: hexToUtf8(t[3]),
				ref: Number(t[4]),
				ts: Number(t[5]),
				tz: Number(t[6]),
				alphabet: t[7],
				text: hexToUtf8(t[8]),
				pdus: t.slice(10, 10 + n)
			};
		});
	if (cases.length !== count) throw new Error(`pdu_diff gen gave ${cases.length} cases, want ${count}`);

	const failures = new Map(); // id -> reasons
	const fail = (id, why) => failures.set(id, [...(failures.get(id) || []), why]);
	const byParts = [0, 0, 0, 0, 0, 0, 0, 0, 0];
	let aPassed = 0;
	const lines = [];
	for (const c of cases) {
		byParts[Math.min(c.pdus.length, 8)]++;
		const err = checkOurs(c);
		if (err) fail(c.id, `ours->node-pdu: ${err}`);
		else aPassed++;
		lines.push(nodeLine(c));
	}

	const out = run(['check'], lines.join('\n') + '\n');
	let bPassed = -1;
	let bFailed = -1;
	let bFailLines = 0;
	for (const l of out.split('\n')) {
		const t = l.split(' ');
		if (t[0] === 'FAIL') {
			bFailLines++;
			fail(t[1], `node-pdu->ours: ${t.slice(2).join(' ')}`);
		}
		if (t[0] === 'B') [bPassed, bFailed] = [Number(t[1]), Number(t[2])];
	}
	// Every case answered, every failure explained: no silent pass.
	if (bPassed + bFailed !== lines.length || bFailLines !== bFailed)
		throw new Error(`pdu_diff check: ${bPassed} passed + ${bFailed} failed of ${lines.length}`);

	let shown = 0;
	for (const [id, why] of failures) {
		if (shown++ < 20) console.log(`FAIL case ${id}: ${why.join('; ')}`);
	}
	const failed = failures.size;
	const passed = cases.length - failed;
	console.log(
		`ours->node-pdu: ${aPassed}/${cases.length} ok; node-pdu->ours: ${bPassed}/${lines.length} ok ` +
			`(${stats.nodeParts} parts)\n` +
			`node-pdu quirks met: reads § as \` in ${stats.sectionSign} texts; lossy 7-bit in ${stats.lossy}; ` +
			`${stats.overlong} over-long parts (rejected by pdu_decode, as they must be); ${stats.splitPairs} split pairs`
	);
	console.log(`parts per text (ours): ${byParts.slice(1, 8).map((n, i) => `${i + 1}:${n}`).join(' ')}`);
	console.log(`pdu-diff: ${passed} passed, ${failed} failed (seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
	process.exit(failed === 0 && passed === count ? 0 : 1);
}

main();
