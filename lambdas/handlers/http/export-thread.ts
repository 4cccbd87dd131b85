/**
 * GET /api/threads/{threadId}/export?format=json|markdown — the whole thread in seq order, as a
 * download (read page by page, up to EXPORT_MAX_BYTES).
 */
import { parseExportQuery, parseId } from "../../core/validation.ts";
import { config } from "../../runtime/config.ts";
import { threadService } from "../../runtime/container.ts";
import { httpHandler } from "../../runtime/http-middleware.ts";

export const handler = httpHandler(
  async ({ principal, params, query }) => {
    const threadId = parseId(params.threadId, "threadId");
    const { format } = parseExportQuery(query);
    const exported = await (await threadService()).export(
      principal,
      threadId,
      format,
      config().EXPORT_MAX_BYTES,
    );
    return {
      status: 200,
      raw: true,
      body: exported.body,
      headers: {
        "content-type": exported.contentType,
        "content-disposition": `attachment; filename="${exported.filename}"`,
      },
    };
  },
  { body: "none" },
);
