package com.callbackcenter.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.callbackcenter.compat.CallBackService;
import com.callbackcenter.compat.CallBackTask;
import com.callbackcenter.compat.HttpCallBackService;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** The SDK against the real server that scripts/test started (CBC_URL, CBC_TOKEN). */
class CallbackClientTest {
    private static final String URL = require("CBC_URL");
    private static final String TOKEN = require("CBC_TOKEN");
    private static final Set<String> FINISHED = Set.of("succeeded", "failed", "cancelled");

    private static String require(String name) {
        String value = System.getenv(name);
        if (value == null || value.isBlank()) {
            throw new IllegalStateException(name + " must name the server under test (scripts/test sets it)");
        }
        return value;
    }

    private static CallbackClient client() {
        return CallbackClient.builder(URL).token(TOKEN).build();
    }

    private static String unique(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().substring(0, 8);
    }

    @Test
    void aTaskIsSubmittedDeliveredAndShownWithItsAttempts() throws Exception {
        try (LocalReceiver receiver = new LocalReceiver()) {
            CallbackClient client = client();
            Models.Submitted submitted = client.submit(TaskRequest.post(receiver.url("/paid"))
                    .jsonBody(Map.of("order", 42)).sourceApp(unique("java")));
            assertTrue(submitted.created());
            assertTrue(submitted.task().idempotencyKey().startsWith("cbc-java-"));
            Models.Task done = client.waitFor(submitted.task().taskId(), Set.of("succeeded"), Duration.ofSeconds(15));
            assertEquals(1, done.attempts().size());
            assertEquals("{\"order\":42}", receiver.requests().get(0).bodyText());
            assertEquals(submitted.task().taskId(), receiver.requests().get(0).header("X-Callback-Task-Id"));
        }
    }

    @Test
    void tasksOfAnOrderingKeyArriveInOrder() throws Exception {
        try (LocalReceiver receiver = new LocalReceiver()) {
            CallbackClient client = client();
            String key = unique("order");
            String last = null;
            for (int n = 0; n < 3; n++) {
                last = client.submit(TaskRequest.post(receiver.url("/ordered"))
                        .jsonBody(Map.of("n", n)).orderingKey(key).onFailure("skip")).task().taskId();
            }
            Models.Task done = client.waitFor(last, Set.of("succeeded"), Duration.ofSeconds(15));
            assertEquals(key, done.orderingKey());
            assertEquals("skip", done.onFailure());
            assertEquals(3, receiver.requests().size());
            for (int n = 0; n < 3; n++) {
                assertEquals("{\"n\":" + n + "}", receiver.requests().get(n).bodyText());
            }
        }
    }

    @Test
    void theSameIdempotencyKeyIsOneTask() throws Exception {
        try (LocalReceiver receiver = new LocalReceiver()) {
            String key = unique("order");
            Models.Submitted first = client().submit(TaskRequest.post(receiver.url("/once")).idempotencyKey(key));
            Models.Submitted again = client().submit(TaskRequest.post(receiver.url("/once")).idempotencyKey(key));
            assertTrue(first.created());
            assertFalse(again.created());
            assertEquals(first.task().taskId(), again.task().taskId());
        }
    }

    /**
     * A proxy lets the first request through, waits for the server's answer and
     * hangs up without passing it on: the task is stored, the client cannot
     * know. Its retry carries the same key and finds the task.
     */
    @Test
    void aSubmitRetriedAfterTheConnectionDroppedCreatesOneTask() throws Exception {
        URI server = URI.create(URL);
        try (ServerSocket proxy = new ServerSocket(0); LocalReceiver receiver = new LocalReceiver()) {
            AtomicBoolean first = new AtomicBoolean(true);
            Thread relay = new Thread(() -> {
                while (!proxy.isClosed()) {
                    try {
                        Socket client = proxy.accept();
                        Socket upstream = new Socket(server.getHost(), server.getPort());
                        if (first.getAndSet(false)) {
                            upstream.getOutputStream().write(wholeRequest(client.getInputStream()));
                            upstream.getInputStream().read();
                            client.close();
                            upstream.close();
                        } else {
                            pipe(client.getInputStream(), upstream.getOutputStream());
                            pipe(upstream.getInputStream(), client.getOutputStream());
                        }
                    } catch (IOException e) {
                        return;
                    }
                }
            });
            relay.setDaemon(true);
            relay.start();
            String app = unique("dropped");
            CallbackClient throughProxy = CallbackClient.builder("http://127.0.0.1:" + proxy.getLocalPort())
                    .token(TOKEN).build();
            Models.Submitted submitted = throughProxy.submit(TaskRequest.post(receiver.url("/dropped")).sourceApp(app));
            assertFalse(submitted.created(), "the retry found the task the first try stored");
            assertEquals(1, client().listTasks(null, app, 10, null).items().size());
        }
    }

    /** Reads one HTTP/1.1 request: its head, then Content-Length bytes of body. */
    private static byte[] wholeRequest(InputStream in) throws IOException {
        java.io.ByteArrayOutputStream request = new java.io.ByteArrayOutputStream();
        while (!request.toString(java.nio.charset.StandardCharsets.ISO_8859_1).contains("\r\n\r\n")) {
            int b = in.read();
            if (b < 0) {
                throw new IOException("the client hung up mid-request");
            }
            request.write(b);
        }
        String head = request.toString(java.nio.charset.StandardCharsets.ISO_8859_1).toLowerCase(java.util.Locale.ROOT);
        java.util.regex.Matcher length = java.util.regex.Pattern.compile("content-length:\\s*(\\d+)").matcher(head);
        if (length.find()) {
            request.write(in.readNBytes(Integer.parseInt(length.group(1))));
        }
        return request.toByteArray();
    }

    private static void pipe(InputStream from, OutputStream to) {
        Thread thread = new Thread(() -> {
            try (from; to) {
                from.transferTo(to);
            } catch (IOException e) {
                // The other side hung up: the exchange is over.
            }
        });
        thread.setDaemon(true);
        thread.start();
    }

    @Test
    void errorsCarryTheApisStatusCodeAndFields() {
        ApiException missing = assertThrows(ApiException.class,
                () -> client().getTask(UUID.randomUUID().toString()));
        assertEquals(404, missing.status());
        assertEquals("not_found", missing.code());
        ApiException invalid = assertThrows(ApiException.class,
                () -> client().submit(TaskRequest.post("not a url")));
        assertEquals("validation_failed", invalid.code());
        assertEquals("url", invalid.fieldErrors().get(0).field());
        ApiException stranger = assertThrows(ApiException.class,
                () -> CallbackClient.builder(URL).token("cbk_not-a-key").build().getTask(UUID.randomUUID().toString()));
        assertEquals(401, stranger.status());
    }

    @Test
    void anUnreachableServerIsRetriedUntilTheDeadline() throws IOException {
        int port;
        try (ServerSocket closed = new ServerSocket(0)) {
            port = closed.getLocalPort();
        }
        CallbackClient nowhere = CallbackClient.builder("http://127.0.0.1:" + port).token(TOKEN)
                .retryDeadline(Duration.ofMillis(800)).build();
        UnavailableException error = assertThrows(UnavailableException.class,
                () -> nowhere.getTask(UUID.randomUUID().toString()));
        assertTrue(error.attempts() >= 3, error.getMessage());
    }

    @Test
    void cancelListRetryAndBulkCounts() {
        CallbackClient client = client();
        String app = unique("bulk");
        Models.Task later = client.submit(TaskRequest.post("http://127.0.0.1:9/later").delayS(3600).sourceApp(app))
                .task();
        assertEquals("cancelled", client.cancelTask(later.taskId()).status());
        Models.TaskPage page = client.listTasks("cancelled", app, 10, null);
        assertEquals(1, page.items().size());
        Models.BulkResult counted = client.retryTasks(Models.BulkFilter.ofStatus("cancelled").withSourceApp(app).asDryRun());
        assertEquals(1, counted.matched());
        assertEquals(0, counted.acted());
        Models.Task again = client.retryTask(later.taskId());
        assertFalse(again.isFinished());
        Models.BulkResult cancelled = client.cancelTasks(new Models.BulkFilter(null, app, null, null, null, null, null, null));
        assertEquals(1, cancelled.acted());
        assertEquals(2, client.submitBatch(java.util.List.of(
                TaskRequest.post("http://127.0.0.1:9/a").delayS(3600).sourceApp(app),
                TaskRequest.post("http://127.0.0.1:9/b").delayS(3600).sourceApp(app))).size());
    }

    @Test
    void theKkbidaFacadeHandsOverTasksAsTheOldSdkDid() throws Exception {
        try (LocalReceiver receiver = new LocalReceiver()) {
            receiver.answer(request -> request.path().equals("/refuses") ? "FAIL" : "result: SUCCESS");
            CallBackService service = new HttpCallBackService(client());
            CallBackTask task = new CallBackTask();
            task.setUrl(receiver.url("/notify"));
            task.setRequestMethod("post");
            task.setLimitCallCount(3);
            task.setExpectResult("SUCCESS");
            task.setSourceAppName("order-service");
            task.setTargetAppName("pay-service");
            task.setRequestParam("{\"orderId\":\"A1\"}");
            String id = service.call(task);
            UUID.fromString(id);
            Models.Task done = client().waitFor(id, FINISHED, Duration.ofSeconds(15));
            assertEquals("succeeded", done.status());
            assertEquals(3, done.maxAttempts());
            assertEquals("order-service", done.sourceApp());
            assertEquals("pay-service", done.targetApp());
            assertEquals("{\"orderId\":\"A1\"}", receiver.requests().get(0).bodyText());

            CallBackTask get = new CallBackTask();
            get.setUrl(receiver.url("/query"));
            get.setRequestMethod("GET");
            get.setRequestParam("orderId=A1&note=a%20b");
            client().waitFor(service.call(get), FINISHED, Duration.ofSeconds(15));
            LocalReceiver.Request query = receiver.requests().get(1);
            assertEquals("GET", query.method());
            assertTrue(query.query().contains("orderId=A1"), query.query());

            CallBackTask refused = new CallBackTask();
            refused.setUrl(receiver.url("/refuses"));
            refused.setLimitCallCount(1);
            refused.setExpectResult("SUCCESS");
            Models.Task failed = client().waitFor(service.call(refused), FINISHED, Duration.ofSeconds(15));
            assertEquals("failed", failed.status(), "an answer without the expected result is a failure");
        }
    }

    @Test
    void aReceiverVerifiesAnEventWithTheWebhookVerifier() throws Exception {
        try (LocalReceiver receiver = new LocalReceiver()) {
            String name = "java_" + UUID.randomUUID().toString().substring(0, 8);
            String type = "java.test." + name;
            HttpResponse<String> created = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(URL + "/api/v1/endpoints"))
                    .header("Authorization", "Bearer " + TOKEN)
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"name\":\"" + name + "\",\"url\":\""
                            + receiver.url("/events") + "\",\"event_types\":[\"" + type + "\"]}"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(201, created.statusCode(), created.body());
            JsonNode endpoint = Json.MAPPER.readTree(created.body());
            String secret = endpoint.get("secret").asText();

            Models.Published published = client().publish(Models.Event.of(type, Map.of("order", 7)));
            assertEquals(1, published.taskIds().size());
            assertNotNull(published.callId());
            LocalReceiver.Request request = receiver.waitFor(1).get(0);
            WebhookVerifier verifier = new WebhookVerifier(secret);
            verifier.verify(request.header("webhook-id"), request.header("webhook-timestamp"),
                    request.header("webhook-signature"), request.body());
            byte[] tampered = (request.bodyText() + " ").getBytes(java.nio.charset.StandardCharsets.UTF_8);
            assertThrows(WebhookVerifier.InvalidSignature.class, () -> verifier.verify(request.header("webhook-id"),
                    request.header("webhook-timestamp"), request.header("webhook-signature"), tampered));
        }
    }

    @Test
    void theStandardWebhooksExampleVerifies() {
        WebhookVerifier verifier = new WebhookVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        byte[] body = "{\"test\": 2432232314}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        Instant at = Instant.ofEpochSecond(1_614_265_330L);
        verifier.verify("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body, at);
        assertThrows(WebhookVerifier.InvalidSignature.class, () -> verifier.verify("msg_p5jXN8AQM9LWM0D4loKWxJek",
                "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body, at.plusSeconds(600)));
    }
}
