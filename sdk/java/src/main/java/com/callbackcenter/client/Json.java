package com.callbackcenter.client;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;
import java.io.IOException;
import java.time.OffsetDateTime;

/**
 * The one ObjectMapper of the SDK. Times are RFC 3339 strings on the wire; this
 * module reads and writes them as {@link OffsetDateTime}, so that the SDK needs
 * no Jackson module beyond databind.
 */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper()
            .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false)
            .registerModule(new SimpleModule("rfc3339")
                    .addSerializer(OffsetDateTime.class, new JsonSerializer<>() {
                        @Override
                        public void serialize(OffsetDateTime value, JsonGenerator gen, SerializerProvider provider)
                                throws IOException {
                            gen.writeString(value.toString());
                        }
                    })
                    .addDeserializer(OffsetDateTime.class, new JsonDeserializer<>() {
                        @Override
                        public OffsetDateTime deserialize(JsonParser parser, DeserializationContext context)
                                throws IOException {
                            return OffsetDateTime.parse(parser.getValueAsString());
                        }
                    }));

    private Json() {
    }
}
