package com.callbackcenter.client;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A task to submit: call {@code url} until it answers success. Only the URL is
 * required.
 *
 * <pre>{@code
 * TaskRequest task = TaskRequest.post("https://shop.example/paid")
 *         .jsonBody(Map.of("order", 42))
 *         .maxAttempts(5)
 *         .sourceApp("shop");
 * }</pre>
 */
@JsonInclude(JsonInclude.Include.NON_NULL)
public final class TaskRequest {
    @JsonProperty("url")
    private String url;
    @JsonProperty("method")
    private String method;
    @JsonProperty("headers")
    private Map<String, String> headers;
    @JsonProperty("query")
    private Map<String, Object> query;
    @JsonProperty("body")
    private Object body;
    @JsonProperty("body_text")
    private String bodyText;
    @JsonProperty("max_attempts")
    private Integer maxAttempts;
    @JsonProperty("retry_delays_s")
    private List<Integer> retryDelaysS;
    @JsonProperty("timeout_ms")
    private Integer timeoutMs;
    @JsonProperty("delay_s")
    private Integer delayS;
    @JsonProperty("expect")
    private Models.Expect expect;
    @JsonProperty("source_app")
    private String sourceApp;
    @JsonProperty("target_app")
    private String targetApp;
    @JsonProperty("idempotency_key")
    private String idempotencyKey;
    @JsonProperty("ordering_key")
    private String orderingKey;
    @JsonProperty("on_failure")
    private String onFailure;

    public static TaskRequest post(String url) {
        return new TaskRequest().url(url).method("POST");
    }

    public TaskRequest url(String url) {
        this.url = url;
        return this;
    }

    /** GET, POST, PUT, PATCH or DELETE. */
    public TaskRequest method(String method) {
        this.method = method;
        return this;
    }

    public TaskRequest header(String name, String value) {
        if (headers == null) {
            headers = new LinkedHashMap<>();
        }
        headers.put(name, value);
        return this;
    }

    public TaskRequest query(String name, Object value) {
        if (query == null) {
            query = new LinkedHashMap<>();
        }
        query.put(name, value);
        return this;
    }

    /** Any value Jackson writes as JSON, sent as {@code application/json}. */
    public TaskRequest jsonBody(Object body) {
        this.body = body;
        return this;
    }

    /** A raw body, sent as is with the Content-Type header given. */
    public TaskRequest textBody(String text) {
        this.bodyText = text;
        return this;
    }

    /** 1 to 100: the first attempt and the retries together. */
    public TaskRequest maxAttempts(int attempts) {
        this.maxAttempts = attempts;
        return this;
    }

    public TaskRequest retryDelaysS(List<Integer> delays) {
        this.retryDelaysS = delays;
        return this;
    }

    public TaskRequest timeoutMs(int timeoutMs) {
        this.timeoutMs = timeoutMs;
        return this;
    }

    public TaskRequest delayS(int delayS) {
        this.delayS = delayS;
        return this;
    }

    public TaskRequest expect(Models.Expect expect) {
        this.expect = expect;
        return this;
    }

    public TaskRequest sourceApp(String app) {
        this.sourceApp = app;
        return this;
    }

    public TaskRequest targetApp(String app) {
        this.targetApp = app;
        return this;
    }

    /** The same key submitted again returns the first task; generated when unset. */
    public TaskRequest idempotencyKey(String key) {
        this.idempotencyKey = key;
        return this;
    }

    /** Tasks with the same key are delivered one at a time, in acceptance order; not with {@code delayS}. */
    public TaskRequest orderingKey(String key) {
        this.orderingKey = key;
        return this;
    }

    /**
     * With an ordering key: {@code "block"} (the default; a task failed for good
     * holds those behind it until an operator re-sends or cancels it) or
     * {@code "skip"}.
     */
    public TaskRequest onFailure(String onFailure) {
        this.onFailure = onFailure;
        return this;
    }

    public String idempotencyKey() {
        return idempotencyKey;
    }

    public String url() {
        return url;
    }

    TaskRequest copy() {
        TaskRequest copy = new TaskRequest();
        copy.url = url;
        copy.method = method;
        copy.headers = headers == null ? null : new LinkedHashMap<>(headers);
        copy.query = query == null ? null : new LinkedHashMap<>(query);
        copy.body = body;
        copy.bodyText = bodyText;
        copy.maxAttempts = maxAttempts;
        copy.retryDelaysS = retryDelaysS;
        copy.timeoutMs = timeoutMs;
        copy.delayS = delayS;
        copy.expect = expect;
        copy.sourceApp = sourceApp;
        copy.targetApp = targetApp;
        copy.idempotencyKey = idempotencyKey;
        copy.orderingKey = orderingKey;
        copy.onFailure = onFailure;
        return copy;
    }
}
