/**
 * Makes a guest's serial output fit for an operator's terminal while the demo streams it: the
 * firmware's cursor, colour and clear-screen sequences are dropped (they would clear the
 * operator's screen), box-drawing bytes become nothing, and the base64 event-log block the
 * guest prints between its markers becomes one line saying how long it was.
 */
import { TERMINAL_ESCAPE } from "../lab/boot.js";
import { markers } from "../lab/guest-init.js";

export function serialFilter(write: (text: string) => void): (chunk: string) => void {
  let partial = "";
  let inLog = false;
  let logLines = 0;
  const emitLine = (raw: string) => {
    const line = raw
      .replace(TERMINAL_ESCAPE, "")
      // eslint-disable-next-line no-control-regex
      .replace(/[\x00-\x08\x0b-\x1f\x7f\ufffd]/g, "")
      .trimEnd();
    if (line.trim() === markers.eventLogBegin) {
      inLog = true;
      logLines = 0;
      return;
    }
    if (inLog) {
      if (line.trim().startsWith(markers.eventLogEnd)) {
        inLog = false;
        write(`[TCG event log: ${logLines} lines of base64, summarised below]\n`);
      } else logLines++;
      return;
    }
    if (line.trim().length > 0) write(`${line}\n`);
  };
  return (chunk: string) => {
    partial += chunk;
    const lines = partial.split(/\r\n|\n|\r/);
    partial = lines.pop() ?? "";
    // Cursor moves and screen clears start new text somewhere else: a line break here.
    // eslint-disable-next-line no-control-regex
    for (const l of lines) for (const piece of l.split(/\x1b\[[0-9;=?]*[HJfK]/)) emitLine(piece);
  };
}
