package com.callbackcenter.compat;

import com.callbackcenter.client.CallbackClient;
import com.callbackcenter.client.CallbackException;
import com.callbackcenter.client.Models;
import com.callbackcenter.client.TaskRequest;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/**
 * {@link CallBackService} over callback-center's API: replace the kkbida bean
 * with this one.
 *
 * <pre>{@code
 * @Bean
 * CallBackService callBackService() {
 *     return new HttpCallBackService(CallbackClient.builder("http://callback-center:8080")
 *             .token(System.getenv("CBC_TOKEN")).build());
 * }
 * }</pre>
 */
public final class HttpCallBackService implements CallBackService {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final CallbackClient client;

    public HttpCallBackService(CallbackClient client) {
        this.client = client;
    }

    @Override
    public String call(CallBackTask task) {
        return client.submit(toRequest(task)).task().taskId();
    }

    /** The task as callback-center takes it; docs/clients.md has the table. */
    public static TaskRequest toRequest(CallBackTask task) {
        if (task.getUrl() == null || task.getUrl().isBlank()) {
            throw new CallbackException("CallBackTask.url is required");
        }
        String method = task.getRequestMethod() == null ? "POST" : task.getRequestMethod().toUpperCase(Locale.ROOT);
        TaskRequest request = new TaskRequest().url(task.getUrl()).method(method)
                .sourceApp(blankToNull(task.getSourceAppName()))
                .targetApp(blankToNull(task.getTargetAppName()));
        if (task.getLimitCallCount() != null) {
            request.maxAttempts(task.getLimitCallCount());
        }
        if (task.getExpectResult() != null && !task.getExpectResult().isBlank()) {
            request.expect(new Models.Expect(null, task.getExpectResult().trim(), null, null));
        }
        String param = task.getRequestParam();
        if (param != null && !param.isBlank()) {
            if ("GET".equals(method) || "DELETE".equals(method)) {
                for (String pair : param.split("&")) {
                    if (pair.isEmpty()) {
                        continue;
                    }
                    String[] parts = pair.split("=", 2);
                    request.query(decode(parts[0]), parts.length > 1 ? decode(parts[1]) : "");
                }
            } else {
                JsonNode json = parseJson(param);
                if (json != null) {
                    request.jsonBody(json);
                } else {
                    request.header("Content-Type", "application/x-www-form-urlencoded").textBody(param);
                }
            }
        }
        return request;
    }

    private static JsonNode parseJson(String text) {
        String trimmed = text.trim();
        if (!(trimmed.startsWith("{") || trimmed.startsWith("["))) {
            return null;
        }
        try {
            return JSON.readTree(trimmed);
        } catch (IOException e) {
            return null;
        }
    }

    private static String decode(String text) {
        return URLDecoder.decode(text, StandardCharsets.UTF_8);
    }

    private static String blankToNull(String text) {
        return text == null || text.isBlank() ? null : text;
    }
}
