// Debian's Chromium through playwright-core, launched the same way for every browser test:
// headless, no sandbox (CI runs as root), nothing fetched from the network on its own.
//
//   import { launchChromium } from "./chromium.mjs";
//   const browser = await launchChromium(dir);   // dir holds node_modules/playwright-core
import { createRequire } from "node:module";
import path from "node:path";

export async function launchChromium(dir) {
  const { chromium } = createRequire(path.resolve(dir) + "/")("playwright-core");
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
