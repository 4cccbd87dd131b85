/** Queue record bodies: the encoding lives in the core (its size rules use it too). */
export { sqsBody } from "../../core/queue-body.ts";
