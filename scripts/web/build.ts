/**
 * Builds the web client (web/) into a folder of static files: index.html, app.css, app.js (one
 * esbuild bundle of web/src/main.tsx with Preact). The local stack serves it; the CDK app's static
 * site deploys it. `npx tsx scripts/web/build.ts [outdir]` builds it by hand.
 */
import { copyFileSync, mkdirSync } from "node:fs";
import { copyFile, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildOptions, build, buildSync } from "esbuild";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const WEB_SOURCE = path.join(ROOT, "web");
export const WEB_DIST = path.join(ROOT, ".local", "web");

const STATIC_FILES = ["index.html", "app.css"];

const options = (outdir: string): BuildOptions => ({
  entryPoints: [path.join(WEB_SOURCE, "src", "main.tsx")],
  outfile: path.join(outdir, "app.js"),
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  minify: true,
  sourcemap: true,
  logLevel: "silent",
});

export const buildWebClient = async (outdir = WEB_DIST): Promise<string> => {
  await mkdir(outdir, { recursive: true });
  await build(options(outdir));
  await Promise.all(STATIC_FILES.map((f) => copyFile(path.join(WEB_SOURCE, f), path.join(outdir, f))));
  return outdir;
};

/** The same, synchronously (the CDK app builds it while it synthesizes). */
export const buildWebClientSync = (outdir: string): string => {
  mkdirSync(outdir, { recursive: true });
  buildSync(options(outdir));
  for (const f of STATIC_FILES) copyFileSync(path.join(WEB_SOURCE, f), path.join(outdir, f));
  return outdir;
};

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const out = await buildWebClient(process.argv[2] ?? WEB_DIST);
  console.log(`web client built in ${out}`);
}
