// A Server-Sent Events reader for ferrokey's event streams (GET /events): each
// event carries one JSON line {"time", "authenticatorId", "event", "data"}.

/** One key event from a JSON line (data that is not an object is kept as {text}). */
export function keyEvent(name, text) {
  let line;
  try {
    line = JSON.parse(text);
  } catch {
    line = undefined;
  }
  if (!line || typeof line !== 'object' || Array.isArray(line)) {
    return { event: name, authenticatorId: null, time: '', data: { text }, raw: { event: name, data: text } };
  }
  const data = line.data && typeof line.data === 'object' ? line.data : { value: line.data };
  return {
    event: String(line.event || name),
    authenticatorId: line.authenticatorId ?? null,
    time: String(line.time ?? ''),
    data,
    raw: line,
  };
}

/** Incremental SSE parsing: event, multi-line data, comments, CR/LF/CRLF. */
export class SseParser {
  #name = '';
  #data = [];
  #rest = '';

  /** Parses more text; returns the events it completed. */
  feed(text) {
    const lines = (this.#rest + text).replace(/\r\n/g, '\n').replace(/\r/g, '\n').split('\n');
    this.#rest = lines.pop();
    const out = [];
    for (const line of lines) {
      const event = this.line(line);
      if (event) out.push(event);
    }
    return out;
  }

  /** Parses one line (without its end); returns an event at a blank line. */
  line(line) {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#name = '';
        return null;
      }
      const event = keyEvent(this.#name || 'message', this.#data.join('\n'));
      this.#name = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#name = value;
    else if (field === 'data') this.#data.push(value);
    return null;
  }
}
