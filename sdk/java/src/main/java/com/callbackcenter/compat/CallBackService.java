package com.callbackcenter.compat;

/** The kkbida SDK's service: hand over a task, get its id back. */
public interface CallBackService {
    /**
     * Hands the task to callback-center, which calls its URL until it answers
     * as expected. Returns the task's UUID once the task is stored.
     */
    String call(CallBackTask task);
}
