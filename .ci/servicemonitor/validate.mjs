// Validates ServiceMonitor manifests (JSON files given as arguments) against the
// prometheus-operator's monitoring.coreos.com/v1 schema, generated from its Go types by
// @kubernetes-models/prometheus-operator. Exits non-zero naming the first invalid field.
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

let failed = false;
for (const file of process.argv.slice(2)) {
  const manifest = JSON.parse(readFileSync(file, "utf8"));
  try {
    new ServiceMonitor(manifest).validate();
    console.log(`ok ServiceMonitor ${manifest.metadata.name} (monitoring.coreos.com/v1 schema)`);
  } catch (error) {
    failed = true;
    console.error(`INVALID ServiceMonitor in ${file}: ${error.message}`);
  }
}
process.exit(failed ? 1 : 0);
