package com.callbackcenter.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.type.TypeReference;
import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A client of one callback-center server, over {@code java.net.http}.
 *
 * <pre>{@code
 * CallbackClient client = CallbackClient.builder("http://127.0.0.1:8080")
 *         .token(System.getenv("CBC_TOKEN"))
 *         .build();
 * String taskId = client.submit(TaskRequest.post("https://shop.example/paid")
 *         .jsonBody(Map.of("order", 42))).task().taskId();
 * }</pre>
 *
 * <p>A submit carries an idempotency key, generated when none is given, so
 * that it can be retried safely. Calls are retried with backoff while the
 * server answers 503 or 429 or cannot be reached, until the retry deadline;
 * reads and submits are also retried when the exchange broke off. Instances
 * are thread-safe; make one and share it.
 */
public final class CallbackClient {
    private final HttpClient http;
    private final String base;
    private final String token;
    private final Duration requestTimeout;
    private final Duration retryDeadline;

    private CallbackClient(Builder builder) {
        this.base = builder.baseUrl.replaceAll("/+$", "");
        this.token = builder.token;
        this.requestTimeout = builder.requestTimeout;
        this.retryDeadline = builder.retryDeadline;
        // HTTP/1.1: without TLS the server speaks nothing else, and an h2c
        // upgrade would only cost a round trip.
        this.http = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(builder.connectTimeout)
                .build();
    }

    public static Builder builder(String baseUrl) {
        return new Builder(baseUrl);
    }

    /** How the client reaches the server. */
    public static final class Builder {
        private final String baseUrl;
        private String token;
        private Duration connectTimeout = Duration.ofSeconds(5);
        private Duration requestTimeout = Duration.ofSeconds(30);
        private Duration retryDeadline = Duration.ofSeconds(30);

        private Builder(String baseUrl) {
            if (baseUrl == null || !(baseUrl.startsWith("http://") || baseUrl.startsWith("https://"))) {
                throw new IllegalArgumentException("the server URL must be http:// or https://, not " + baseUrl);
            }
            this.baseUrl = baseUrl;
        }

        /** An API key ({@code cbk_...}) or the admin token. */
        public Builder token(String token) {
            this.token = token;
            return this;
        }

        public Builder connectTimeout(Duration timeout) {
            this.connectTimeout = timeout;
            return this;
        }

        /** For one try of one call. */
        public Builder requestTimeout(Duration timeout) {
            this.requestTimeout = timeout;
            return this;
        }

        /** No try starts later than this after the first; zero: one try. */
        public Builder retryDeadline(Duration deadline) {
            this.retryDeadline = deadline;
            return this;
        }

        public CallbackClient build() {
            return new CallbackClient(this);
        }
    }

    // ---- tasks ----

    /**
     * Submits a task. Without an idempotency key one is generated, so that a
     * submit retried after a broken connection creates one task.
     */
    public Models.Submitted submit(TaskRequest task) {
        TaskRequest keyed = task.copy();
        if (keyed.idempotencyKey() == null) {
            keyed.idempotencyKey(freshKey());
        }
        Answer<Models.Task> answer = call("POST", "/api/v1/tasks", keyed, true, Models.Task.class);
        return new Models.Submitted(answer.body(), answer.status() == 201);
    }

    /** Submits up to 1,000 tasks in one transaction: all are stored, or none. */
    public List<Models.BatchItem> submitBatch(List<TaskRequest> tasks) {
        List<TaskRequest> keyed = new ArrayList<>();
        for (TaskRequest task : tasks) {
            TaskRequest copy = task.copy();
            if (copy.idempotencyKey() == null) {
                copy.idempotencyKey(freshKey());
            }
            keyed.add(copy);
        }
        Map<String, Object> body = Map.of("tasks", keyed);
        return call("POST", "/api/v1/tasks/batch", body, true, Models.Batch.class).body().tasks();
    }

    /** One task, with every attempt. */
    public Models.Task getTask(String taskId) {
        return call("GET", "/api/v1/tasks/" + segment(taskId), null, true, Models.Task.class).body();
    }

    /**
     * A page of tasks, newest first. Any filter may be null; pass the previous
     * page's {@code nextCursor} for the next.
     */
    public Models.TaskPage listTasks(String status, String sourceApp, Integer limit, String cursor) {
        Map<String, Object> query = new LinkedHashMap<>();
        query.put("status", status);
        query.put("source_app", sourceApp);
        query.put("limit", limit);
        query.put("cursor", cursor);
        return call("GET", "/api/v1/tasks" + queryString(query), null, true, Models.TaskPage.class).body();
    }

    /** Re-sends a finished task with a fresh budget of attempts. */
    public Models.Task retryTask(String taskId) {
        return call("POST", "/api/v1/tasks/" + segment(taskId) + "/retry", null, false, Models.Task.class).body();
    }

    /** Cancels a task that has not finished. */
    public Models.Task cancelTask(String taskId) {
        return call("POST", "/api/v1/tasks/" + segment(taskId) + "/cancel", null, false, Models.Task.class).body();
    }

    /** Re-sends every finished task the filter matches (only counts with dryRun). */
    public Models.BulkResult retryTasks(Models.BulkFilter filter) {
        boolean safe = Boolean.TRUE.equals(filter.dryRun());
        return call("POST", "/api/v1/tasks/retry", filter, safe, Models.BulkResult.class).body();
    }

    /** Cancels every unfinished task the filter matches (only counts with dryRun). */
    public Models.BulkResult cancelTasks(Models.BulkFilter filter) {
        boolean safe = Boolean.TRUE.equals(filter.dryRun());
        return call("POST", "/api/v1/tasks/cancel", filter, safe, Models.BulkResult.class).body();
    }

    /**
     * Polls the task until its status is one of {@code statuses}, or throws
     * {@link CallbackException} when {@code timeout} passes first.
     */
    public Models.Task waitFor(String taskId, Set<String> statuses, Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        long pauseMs = 100;
        while (true) {
            Models.Task task = getTask(taskId);
            if (statuses.contains(task.status())) {
                return task;
            }
            long leftMs = (deadline - System.nanoTime()) / 1_000_000;
            if (leftMs <= 0) {
                throw new CallbackException("task " + taskId + " is still " + task.status() + " after " + timeout);
            }
            sleep(Math.min(pauseMs, leftMs));
            pauseMs = Math.min(pauseMs * 2, 2_000);
        }
    }

    // ---- events ----

    /** Publishes an event; without a call id one is generated, so retries publish once. */
    public Models.Published publish(Models.Event event) {
        Models.Event keyed = event.callId() != null ? event
                : new Models.Event(event.eventType(), event.payload(), event.app(), freshKey(), event.orderingKey());
        return call("POST", "/api/v1/events", keyed, true, Models.Published.class).body();
    }

    // ---- plumbing ----

    private record Answer<T>(int status, T body) {
    }

    private static String freshKey() {
        return "cbc-java-" + UUID.randomUUID().toString().replace("-", "");
    }

    private static String segment(String value) {
        return URLEncoder.encode(value, StandardCharsets.UTF_8).replace("+", "%20");
    }

    private static String queryString(Map<String, Object> params) {
        StringBuilder query = new StringBuilder();
        for (Map.Entry<String, Object> param : params.entrySet()) {
            if (param.getValue() == null) {
                continue;
            }
            query.append(query.length() == 0 ? '?' : '&')
                    .append(URLEncoder.encode(param.getKey(), StandardCharsets.UTF_8))
                    .append('=')
                    .append(URLEncoder.encode(param.getValue().toString(), StandardCharsets.UTF_8));
        }
        return query.toString();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CallbackException("interrupted", e);
        }
    }

    /**
     * Sends one call, trying again while nothing can have happened on the
     * server (no connection, 503, 429), and, when {@code safe}, also when the
     * exchange broke off after the request went out.
     */
    private <T> Answer<T> call(String method, String path, Object body, boolean safe, Class<T> answerType) {
        byte[] json;
        try {
            json = body == null ? null : Json.MAPPER.writeValueAsBytes(body);
        } catch (JsonProcessingException e) {
            throw new CallbackException("cannot write the request: " + e.getMessage(), e);
        }
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(base + path))
                .timeout(requestTimeout)
                .header("Accept", "application/json")
                .header("User-Agent", "callback-center-java/0.1.0");
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        if (json != null) {
            request.header("Content-Type", "application/json")
                    .method(method, HttpRequest.BodyPublishers.ofByteArray(json));
        } else {
            request.method(method, HttpRequest.BodyPublishers.noBody());
        }
        long started = System.nanoTime();
        long pauseMs = 200;
        int attempts = 0;
        while (true) {
            attempts++;
            CallbackException failure;
            long waitMs = pauseMs;
            try {
                HttpResponse<byte[]> response = http.send(request.build(), HttpResponse.BodyHandlers.ofByteArray());
                int status = response.statusCode();
                if (status == 503 || status == 429) {
                    failure = new ApiException(problem(status, response.body()));
                    waitMs = response.headers().firstValue("Retry-After")
                            .flatMap(CallbackClient::seconds).map(s -> s * 1000).orElse(pauseMs);
                } else if (status >= 200 && status < 300) {
                    return new Answer<>(status, read(status, response.body(), answerType));
                } else {
                    throw new ApiException(problem(status, response.body()));
                }
            } catch (ConnectException e) {
                failure = new CallbackException("could not connect to " + base + ": " + e.getMessage(), e);
            } catch (IOException e) {
                // Timed out or broke off after the request went out: the
                // server may have acted, so only a safe call is sent again.
                failure = new CallbackException(e instanceof HttpTimeoutException
                        ? "no answer within " + requestTimeout
                        : "the exchange with the server broke off: " + e.getMessage(), e);
                if (!safe) {
                    throw failure;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CallbackException("interrupted", e);
            }
            long elapsedMs = (System.nanoTime() - started) / 1_000_000;
            if (elapsedMs + waitMs > retryDeadline.toMillis()) {
                if (attempts == 1) {
                    throw failure;
                }
                throw new UnavailableException(failure.getMessage(), attempts, failure);
            }
            sleep(waitMs + ThreadLocalRandom.current().nextLong(waitMs / 5 + 1));
            pauseMs = Math.min(pauseMs * 2, 5_000);
        }
    }

    private static java.util.Optional<Long> seconds(String header) {
        try {
            return java.util.Optional.of(Long.parseLong(header.trim()));
        } catch (NumberFormatException e) {
            return java.util.Optional.empty();
        }
    }

    private static <T> T read(int status, byte[] body, Class<T> type) {
        try {
            return Json.MAPPER.readValue(body, type);
        } catch (IOException e) {
            throw new CallbackException("unexpected answer (" + status + "): " + e.getMessage(), e);
        }
    }

    private static Problem problem(int status, byte[] body) {
        try {
            return Json.MAPPER.readValue(body, new TypeReference<Problem>() {
            });
        } catch (IOException e) {
            String text = new String(body, StandardCharsets.UTF_8);
            return new Problem("about:blank", "Error", status, text.length() > 500 ? text.substring(0, 500) : text,
                    "http_" + status, List.of());
        }
    }
}
