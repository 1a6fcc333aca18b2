// Which Node-RED the node tests and the editor end-to-end tests run against: the project's devDependency, or
// the one installed under the folder TEST_NODE_RED_PREFIX names (a folder whose node_modules holds node-red,
// e.g. `npm install --prefix <folder> node-red@5`). CI uses it to run the same tests on another major version.
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const prefix = process.env.TEST_NODE_RED_PREFIX;

/** `require` that resolves node-red and @node-red/* from the chosen install. */
export const requireFromNodeRed: NodeJS.Require = prefix
  ? createRequire(join(resolve(prefix), "package.json"))
  : require;
