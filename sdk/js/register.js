// `node --import <this file>`: lets native tests load JS policies as the
// component build does. It maps the SDK's bare specifier `airlock-policy`
// (and `airlock-policy/testing`) to this folder, and the WIT imports
// `airlock:policy/state@0.2.0` and `airlock:policy/log@0.2.0` to the
// in-memory fakes that testing.js drives.

import { register } from 'node:module';

register('./hooks.js', import.meta.url);
