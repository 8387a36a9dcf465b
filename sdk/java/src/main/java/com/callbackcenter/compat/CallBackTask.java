package com.callbackcenter.compat;

/**
 * A task in the kkbida callback center SDK's shape, so that existing callers
 * keep their code. How each field maps onto callback-center: docs/clients.md.
 */
public class CallBackTask {
    private String url;
    private String requestMethod = "POST";
    private Integer limitCallCount;
    private String expectResult;
    private String sourceAppName;
    private String targetAppName;
    private String requestParam;

    public String getUrl() {
        return url;
    }

    public void setUrl(String url) {
        this.url = url;
    }

    public String getRequestMethod() {
        return requestMethod;
    }

    public void setRequestMethod(String requestMethod) {
        this.requestMethod = requestMethod;
    }

    public Integer getLimitCallCount() {
        return limitCallCount;
    }

    public void setLimitCallCount(Integer limitCallCount) {
        this.limitCallCount = limitCallCount;
    }

    public String getExpectResult() {
        return expectResult;
    }

    public void setExpectResult(String expectResult) {
        this.expectResult = expectResult;
    }

    public String getSourceAppName() {
        return sourceAppName;
    }

    public void setSourceAppName(String sourceAppName) {
        this.sourceAppName = sourceAppName;
    }

    public String getTargetAppName() {
        return targetAppName;
    }

    public void setTargetAppName(String targetAppName) {
        this.targetAppName = targetAppName;
    }

    public String getRequestParam() {
        return requestParam;
    }

    public void setRequestParam(String requestParam) {
        this.requestParam = requestParam;
    }
}
