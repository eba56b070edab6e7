import { renderErrorsDoc } from "./errors-doc.js";

process.stdout.write(renderErrorsDoc());
