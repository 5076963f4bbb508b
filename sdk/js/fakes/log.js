// Fake `airlock:policy/log@0.2.0` for native tests: records every call.

import { current } from './host.js';

export function log(level, message, fields) {
  current.logs.push({ level, message, fields });
}
