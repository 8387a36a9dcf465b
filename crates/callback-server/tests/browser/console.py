"""The console in a real browser: Debian's chromium, headless, driven by
Playwright for Python (installed by scripts/test). Run by
tests/api/console.rs, which starts the server and the fake receivers and
checks afterwards what they got. Each step asserts what a person would see;
any failure exits non-zero with the step's name. Screenshots of every page
go to $SHOTS."""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE = os.environ["BASE"]
TOKEN = os.environ["TOKEN"]
FAILED_TASK = os.environ["FAILED_TASK"]
RECEIVER = os.environ["RECEIVER"]
ROBOT = os.environ["ROBOT"]
SHOTS = os.environ["SHOTS"]

os.makedirs(SHOTS, exist_ok=True)
expect.set_options(timeout=10_000)


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def submit_task(url):
    """Submits a task through the API, as a service would."""
    body = json.dumps({"url": url, "source_app": "live"}).encode()
    request = urllib.request.Request(
        f"{BASE}/api/v1/tasks",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        return json.loads(answer.read())["task_id"]


def sign_in(browser, username=None, password=None, token=None):
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{BASE}/console/overview")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    if token:
        page.fill("#token-form input[name=token]", token)
        page.click("#token-form button")
    else:
        page.fill("#login-form input[name=username]", username)
        page.fill("#login-form input[name=password]", password)
        page.click("#login-form button")
    expect(page).to_have_url(re.compile(r"/console/overview"))
    return context, page


def create_account(page, username, role):
    page.goto(f"{BASE}/console/accounts")
    page.fill("#add-account input[name=username]", username)
    page.select_option("#add-account select[name=role]", role)
    page.click("#add-account button")
    password = page.inner_text("#new-password").strip()
    assert len(password) >= 24, password
    return password


def csrf_of(page):
    return page.get_attribute("form[action='/console/logout'] input[name=csrf]", "value")


def main():
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

        step = "a wrong password is refused"
        context = browser.new_context(locale="en-US")
        page = context.new_page()
        page.goto(f"{BASE}/console/login")
        shot(page, "01-login")
        page.fill("#login-form input[name=username]", "nobody")
        page.fill("#login-form input[name=password]", "wrong")
        page.click("#login-form button")
        expect(page.locator("#login-error")).to_be_visible()
        context.close()

        step = "the admin token signs in and creates accounts"
        admin_context, admin = sign_in(browser, token=TOKEN)
        # Four tasks were accepted, all failed for good, before the browser came.
        expect(admin.locator("#hour-accepted")).to_have_text("4")
        expect(admin.locator("#hour-failed")).to_have_text("4")
        expect(admin.locator("#day-accepted")).to_have_text("4")
        shot(admin, "02-overview")
        operator_password = create_account(admin, "olga", "operator")
        viewer_password = create_account(admin, "vic", "viewer")
        shot(admin, "10-accounts")

        step = "an operator signs in"
        context, page = sign_in(browser, "olga", operator_password)
        expect(page.locator("#hour-accepted")).to_be_visible()

        step = "filtering tasks puts the filter in the URL"
        page.goto(f"{BASE}/console/tasks")
        page.select_option("#task-filter select[name=status]", "failed")
        page.fill("#task-filter input[name=app]", "billing")
        page.click("#task-filter button")
        expect(page).to_have_url(re.compile(r"status=failed.*app=billing"))
        expect(page.locator("#task-rows tr")).to_have_count(1 + 3)
        shot(page, "03-tasks")

        step = "a failed task shows its attempt"
        page.goto(f"{BASE}/console/tasks/{FAILED_TASK}")
        expect(page.locator("#task-status")).to_have_text("failed")
        expect(page.locator("#attempts tr.attempt")).to_have_count(1)
        expect(page.locator("#attempts tr.attempt").first).to_contain_text("500")
        shot(page, "04-task")

        step = "re-sending it shows the new attempt"
        page.click("#resend")
        expect(page.locator("#notice")).to_be_visible()
        deadline = time.time() + 15
        while time.time() < deadline and not (
            page.locator("#attempts tr.attempt").count() == 2
            and page.inner_text("#task-status") in ("succeeded", "failed")
        ):
            time.sleep(0.3)
            page.reload()
        assert page.inner_text("#task-status") == "succeeded", page.inner_text("main")
        expect(page.locator("#attempts tr.attempt")).to_have_count(2)
        expect(page.locator("#attempts tr.attempt").first).to_contain_text("200")

        step = "bulk re-send asks for the exact count"
        page.goto(f"{BASE}/console/tasks?status=failed&app=billing")
        page.click("#bulk-link")
        expect(page.locator("#bulk-count")).to_have_text("3")
        shot(page, "05-bulk")
        page.fill("#bulk-resend input[name=confirm]", "2")
        page.click("#bulk-resend button")
        expect(page.locator("#bulk-problem")).to_be_visible()
        page.fill("#bulk-resend input[name=confirm]", "3")
        page.click("#bulk-resend button")
        expect(page.locator("#bulk-done")).to_contain_text("3")

        step = "failed buckets are listed"
        page.goto(f"{BASE}/console/failed-buckets")
        shot(page, "06-buckets")

        step = "a DingTalk hook is added and its test reaches the robot"
        page.goto(f"{BASE}/console/alert-hooks")
        page.select_option("#add-hook select[name=kind]", "dingtalk")
        page.fill("#add-hook input[name=url]", ROBOT)
        page.fill("#add-hook input[name=secret]", "SEC-console-test")
        page.fill("#add-hook input[name=remark]", "on-call group")
        page.click("#add-hook button")
        expect(page.locator("#hook-notice")).to_be_visible()
        expect(page.locator("#hooks")).to_contain_text("access_token=***")
        page.click("button.test-hook")
        expect(page.locator("#test-result.notice")).to_be_visible()
        expect(page.locator("#test-answer")).to_contain_text("errcode")
        shot(page, "08-hooks")

        step = "a new attempt appears in the live tail within 2 s"
        page.goto(f"{BASE}/console/tail?app=live")
        page.wait_for_timeout(500)  # the stream is open before the task goes
        task_id = submit_task(f"{RECEIVER}/live")
        expect(page.locator("#tail-rows")).to_contain_text(task_id, timeout=2_000)
        shot(page, "07-tail")

        step = "an unrouted vendor callback is forwarded by hand"
        page.goto(f"{BASE}/console/inbound")
        expect(page.locator("#unrouted")).to_contain_text("A-1")
        page.fill("#unrouted input[name=target_url]", f"{RECEIVER}/forwarded-by-hand")
        page.click("#unrouted button")
        expect(page.locator("#inbound-notice")).to_be_visible()

        step = "a form without the CSRF token is refused"
        answer = page.request.post(f"{BASE}/console/tasks/{FAILED_TASK}/cancel", form={"x": "1"})
        assert answer.status == 403, answer.status
        assert "expired" in answer.text(), answer.text()
        context.close()

        step = "a viewer sees no re-send button and a forged POST is refused"
        context, page = sign_in(browser, "vic", viewer_password)
        page.goto(f"{BASE}/console/tasks/{FAILED_TASK}")
        expect(page.locator("#task-status")).to_be_visible()
        assert page.locator("#resend").count() == 0
        assert page.locator("#cancel").count() == 0
        forged = page.request.post(
            f"{BASE}/console/tasks/{FAILED_TASK}/retry", form={"csrf": csrf_of(page)}
        )
        assert forged.status == 403, forged.status
        context.close()

        step = "an endpoint is added, tested and its secret rotated"
        admin.goto(f"{BASE}/console/endpoints")
        admin.fill("#add-endpoint input[name=name]", "orders_svc")
        admin.fill("#add-endpoint input[name=url]", f"{RECEIVER}/events")
        admin.fill("#add-endpoint input[name=event_types]", "order.paid, order.shipped")
        admin.click("#add-endpoint button")
        first_secret = admin.inner_text("#endpoint-secret").strip()
        assert first_secret.startswith("whsec_"), first_secret
        admin.click("#endpoints a:text('orders_svc')")
        admin.click("#test-endpoint button")
        expect(admin.locator("#endpoint-test.notice")).to_contain_text("HTTP 200")
        admin.click("#rotate-secret button")
        second_secret = admin.inner_text("#endpoint-secret").strip()
        assert second_secret.startswith("whsec_") and second_secret != first_secret
        admin.fill("#edit-endpoint input[name=max_in_flight]", "8")
        admin.click("#edit-endpoint button")
        expect(admin.locator("#endpoint-saved")).to_be_visible()
        expect(admin.locator("#edit-endpoint input[name=max_in_flight]")).to_have_value("8")
        shot(admin, "09-endpoint")
        admin.goto(f"{BASE}/console/endpoints")
        shot(admin, "09-endpoints")

        step = "a route is added"
        admin.goto(f"{BASE}/console/inbound")
        admin.fill("#add-route input[name=namespace]", "acme")
        admin.fill("#add-route input[name=key]", "A-9")
        admin.fill("#add-route input[name=target_url]", f"{RECEIVER}/acme")
        admin.fill("#add-route input[name=ttl_s]", "3600")
        admin.click("#add-route button")
        expect(admin.locator("#routes")).to_contain_text("A-9")
        shot(admin, "09-inbound")

        step = "an API key is created, shown once, and revoked"
        admin.goto(f"{BASE}/console/keys")
        admin.fill("#add-key input[name=name]", "shop-backend")
        admin.fill("#add-key input[name=app]", "shop")
        admin.check("#add-key input[value='tasks:write']")
        admin.check("#add-key input[value='tasks:read']")
        admin.click("#add-key button")
        secret = admin.inner_text("#key-secret").strip()
        assert secret.startswith("cbk_"), secret
        request = urllib.request.Request(
            f"{BASE}/api/v1/tasks?limit=1", headers={"Authorization": f"Bearer {secret}"}
        )
        with urllib.request.urlopen(request) as answer:
            assert answer.status == 200
        shot(admin, "10-keys")
        admin.click("#keys button.danger")
        expect(admin.locator("#keys")).to_contain_text("revoked")
        try:
            urllib.request.urlopen(request)
            raise AssertionError("a revoked key still works")
        except urllib.error.HTTPError as refused:
            assert refused.code == 401, refused.code

        step = "the audit log names the operator"
        admin.goto(f"{BASE}/console/audit?actor=account:olga")
        expect(admin.locator("#audit")).to_contain_text("task.retry")
        expect(admin.locator("#audit")).to_contain_text("tasks.retry")
        expect(admin.locator("#audit")).to_contain_text("alert_hook.create")
        shot(admin, "11-audit")

        step = "the overview charts attempts and refreshes itself"
        admin.goto(f"{BASE}/console/overview")
        tallest = admin.eval_on_selector_all(
            "#attempts-chart rect", "bars => Math.max(...bars.map(b => +b.getAttribute('height')))"
        )
        assert tallest > 0, "the chart shows no attempt"
        before = admin.inner_text("#hour-accepted")
        submit_task(f"{RECEIVER}/refresh")
        expect(admin.locator("#hour-accepted")).not_to_have_text(before, timeout=15_000)

        step = "switching to Chinese"
        admin.goto(f"{BASE}/console/overview")
        admin.click("#lang-switch")
        expect(admin.locator("html")).to_have_attribute("lang", "zh")
        expect(admin.locator("header nav")).to_contain_text("任务")
        expect(admin.locator("header nav")).to_contain_text("失败通知管理")
        shot(admin, "12-overview-zh")

        step = "a browser asking for Chinese gets Chinese"
        context = browser.new_context(locale="zh-CN")
        page = context.new_page()
        page.goto(f"{BASE}/console/login")
        expect(page.locator("h1")).to_contain_text("登录")
        context.close()

        step = "the pages fit a phone"
        admin_context.close()
        phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
        page = phone.new_page()
        page.goto(f"{BASE}/console/login")
        page.fill("#token-form input[name=token]", TOKEN)
        page.click("#token-form button")
        page.goto(f"{BASE}/console/tasks")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the task list is {width} px wide on a 390 px phone"
        shot(page, "13-tasks-phone")

        step = "signing out ends the session"
        page.click("form[action='/console/logout'] button")
        expect(page).to_have_url(re.compile(r"/console/login"))
        page.goto(f"{BASE}/console/tasks")
        expect(page).to_have_url(re.compile(r"/console/login"))
        browser.close()
    return step


if __name__ == "__main__":
    step = "starting"
    try:
        main()
    except Exception as failure:  # noqa: BLE001 - any failure fails the test
        import traceback

        traceback.print_exc()
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    print("all console steps passed")
