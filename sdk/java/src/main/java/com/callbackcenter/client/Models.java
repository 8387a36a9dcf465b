package com.callbackcenter.client;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import java.time.OffsetDateTime;
import java.util.List;
import java.util.Map;

/** The API's answers and filters. Unknown fields in answers are ignored. */
public final class Models {
    private Models() {
    }

    /** A task as the API shows it. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Task(
            @JsonProperty("task_id") String taskId,
            String status,
            String url,
            String method,
            @JsonProperty("max_attempts") int maxAttempts,
            @JsonProperty("attempts_made") int attemptsMade,
            @JsonProperty("created_at") OffsetDateTime createdAt,
            @JsonProperty("updated_at") OffsetDateTime updatedAt,
            @JsonProperty("next_attempt_at") OffsetDateTime nextAttemptAt,
            @JsonProperty("last_error") String lastError,
            @JsonProperty("source_app") String sourceApp,
            @JsonProperty("target_app") String targetApp,
            @JsonProperty("idempotency_key") String idempotencyKey,
            @JsonProperty("ordering_key") String orderingKey,
            @JsonProperty("on_failure") String onFailure,
            /** For a waiting task: the task of its key it waits for. */
            @JsonProperty("waiting_for") String waitingFor,
            List<Attempt> attempts) {

        /** Succeeded, failed or cancelled. */
        public boolean isFinished() {
            return "succeeded".equals(status) || "failed".equals(status) || "cancelled".equals(status);
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Attempt(
            int number,
            @JsonProperty("started_at") OffsetDateTime startedAt,
            @JsonProperty("duration_ms") long durationMs,
            boolean success,
            @JsonProperty("status_code") Integer statusCode,
            String error,
            @JsonProperty("response_body") String responseBody) {
    }

    /** A page of tasks, newest first; {@code nextCursor} is null on the last. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record TaskPage(List<Task> items, @JsonProperty("next_cursor") String nextCursor) {
    }

    /** What a submit came to: the task, and whether it is new. */
    public record Submitted(Task task, boolean created) {
    }

    /** One task of a batch. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record BatchItem(@JsonProperty("task_id") String taskId, String status, boolean created) {
    }

    /** A batch's answer. */
    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Batch(List<BatchItem> tasks) {
    }

    /** Which tasks a bulk re-send or cancel acts on; at least one condition. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record BulkFilter(
            String status,
            @JsonProperty("source_app") String sourceApp,
            @JsonProperty("target_app") String targetApp,
            @JsonProperty("url_host") String urlHost,
            @JsonProperty("created_from") OffsetDateTime createdFrom,
            @JsonProperty("created_to") OffsetDateTime createdTo,
            @JsonProperty("target_url") String targetUrl,
            @JsonProperty("dry_run") Boolean dryRun) {

        public static BulkFilter ofStatus(String status) {
            return new BulkFilter(status, null, null, null, null, null, null, null);
        }

        public BulkFilter withSourceApp(String app) {
            return new BulkFilter(status, app, targetApp, urlHost, createdFrom, createdTo, targetUrl, dryRun);
        }

        /** The same filter, only counting. */
        public BulkFilter asDryRun() {
            return new BulkFilter(status, sourceApp, targetApp, urlHost, createdFrom, createdTo, targetUrl, true);
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record BulkResult(long matched, long acted, @JsonProperty("dry_run") boolean dryRun) {
    }

    /** An event for the endpoints subscribed to its type. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Event(
            @JsonProperty("event_type") String eventType,
            Object payload,
            String app,
            @JsonProperty("call_id") String callId,
            @JsonProperty("ordering_key") String orderingKey) {

        public static Event of(String eventType, Object payload) {
            return new Event(eventType, payload, null, null, null);
        }

        /** Each endpoint receives the events of one key one at a time, in publishing order. */
        public Event withOrderingKey(String key) {
            return new Event(eventType, payload, app, callId, key);
        }
    }

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record Published(
            @JsonProperty("call_id") String callId,
            boolean created,
            @JsonProperty("task_ids") List<String> taskIds,
            String note) {
    }

    /** What a task's receiver must answer for success. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record Expect(
            List<Integer> status,
            @JsonProperty("body_contains") String bodyContains,
            @JsonProperty("body_equals") String bodyEquals,
            Map<String, Object> json) {
    }

    /** Helper for reading any JSON answer. */
    public record Raw(JsonNode json) {
    }
}
