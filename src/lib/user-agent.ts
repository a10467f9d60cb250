/**
 * describeUserAgent: "Firefox 133 on Windows", from a User-Agent header, enough to tell an admin's
 * sessions apart (the laptop, the phone, a script). Not identity: the client writes the header. Order
 * matters: Edge and Opera say Chrome too, Chrome says Safari, every browser says Mozilla.
 */
export function describeUserAgent(ua: string): string {
  if (!ua) return "unknown client";
  const version = (re: RegExp) => re.exec(ua)?.[1];
  const browsers: [string, RegExp][] = [
    ["Edge", /Edg(?:e|A|iOS)?\/(\d+)/],
    ["Opera", /OPR\/(\d+)/],
    ["Firefox", /(?:Firefox|FxiOS)\/(\d+)/],
    ["Chrome", /(?:Chrome|CriOS)\/(\d+)/],
    ["Safari", /Version\/(\d+)[\d.]* (?:Mobile\/\S+ )?Safari\//],
    ["curl", /^curl\/([\d.]+)/],
  ];
  let browser: string | undefined;
  for (const [name, re] of browsers) {
    const v = version(re);
    if (v) {
      browser = `${name} ${v}`;
      break;
    }
  }
  const systems: [string, RegExp][] = [
    ["Android", /Android/],
    ["iOS", /iPhone|iPad|iPod/],
    ["Windows", /Windows/],
    ["macOS", /Mac OS X|Macintosh/],
    ["ChromeOS", /CrOS/],
    ["Linux", /Linux|X11/],
  ];
  const os = systems.find(([, re]) => re.test(ua))?.[0];
  if (browser && os) return `${browser} on ${os}`;
  if (browser) return browser;
  // neither recognised: the first product token, bounded ("python-requests/2.32")
  const first = ua.split(/\s/)[0]!.slice(0, 40);
  return os ? `${first} on ${os}` : first;
}
