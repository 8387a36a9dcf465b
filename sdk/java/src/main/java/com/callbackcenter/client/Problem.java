package com.callbackcenter.client;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import java.util.List;

/** An RFC 9457 problem, as the API answers an error. */
@JsonIgnoreProperties(ignoreUnknown = true)
public record Problem(String type, String title, int status, String detail, String code,
                      List<FieldError> errors) {

    @JsonIgnoreProperties(ignoreUnknown = true)
    public record FieldError(String field, String message) {
    }
}
