// Module hooks installed by register.js (they run on Node's loader thread).

const SPECIFIERS = {
  'airlock-policy': './airlock-policy.js',
  'airlock-policy/testing': './testing.js',
  'airlock:policy/state@0.2.0': './fakes/state.js',
  'airlock:policy/log@0.2.0': './fakes/log.js',
};

export async function resolve(specifier, context, nextResolve) {
  const target = SPECIFIERS[specifier];
  if (target !== undefined) {
    return { url: new URL(target, import.meta.url).href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

// A policy folder has no package.json, so Node would take its `.js` files
// for CommonJS; they are ES modules, as ComponentizeJS reads them.
export async function load(url, context, nextLoad) {
  if (url.startsWith('file:') && url.endsWith('.js') && !url.includes('/node_modules/')) {
    return nextLoad(url, { ...context, format: 'module' });
  }
  return nextLoad(url, context);
}
