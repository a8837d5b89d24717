// Finding a key's /dev/hidrawN (uhid or vhci-attached) by its USB ids and
// serial number, from /sys/class/hidraw/*/device/uevent (HID_ID, HID_UNIQ).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { HidrawNotFound } from './errors.js';

export const HIDRAW_CLASS = '/sys/class/hidraw';

/** Whether a HID device's uevent text names this key. */
export function matchesUevent(uevent, vendor, product, serial) {
  let idOk = false;
  let uniqOk = false;
  for (const line of uevent.split('\n')) {
    if (line.startsWith('HID_ID=')) {
      const parts = line.slice(7).split(':');
      idOk = parts.length === 3 && /^[0-9a-fA-F]+$/.test(parts[1]) && /^[0-9a-fA-F]+$/.test(parts[2])
        && parseInt(parts[1], 16) === vendor && parseInt(parts[2], 16) === product;
    } else if (line.startsWith('HID_UNIQ=')) {
      uniqOk = line.slice(9) === serial;
    }
  }
  return idOk && uniqOk;
}

/** The key's /dev/hidrawN, or null. */
export function findHidraw(vendor, product, serial, root = HIDRAW_CLASS) {
  let names;
  try {
    names = readdirSync(root).filter((n) => n.startsWith('hidraw')).sort();
  } catch {
    return null;
  }
  for (const name of names) {
    let uevent;
    try {
      uevent = readFileSync(join(root, name, 'device', 'uevent'), 'utf8');
    } catch {
      continue;
    }
    if (matchesUevent(uevent, vendor, product, serial)) return `/dev/${name}`;
  }
  return null;
}

/** Waits until the key's hidraw node exists. */
export async function waitForHidraw(vendor, product, serial, { timeoutMs = 20000, root = HIDRAW_CLASS } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const node = findHidraw(vendor, product, serial, root);
    if (node && (root !== HIDRAW_CLASS || existsSync(node))) return node;
    if (Date.now() >= deadline) {
      const hex = (n) => n.toString(16).padStart(4, '0');
      throw new HidrawNotFound(`no hidraw node for ${hex(vendor)}:${hex(product)} serial ${serial} within ${timeoutMs} ms `
        + '(a usbip key needs `usbip attach` first; uhid needs /dev/uhid)');
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
