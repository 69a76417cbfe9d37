// Texts of the resident app, Chinese first with English beside it (one table, as the
// console's console/i18n.py). t(key, vars) fills {name} placeholders.

const KEY = "anxin.h5.lang";

const TEXTS = {
  "app.name": ["安心", "Anxin"],
  "app.title": ["安心 · 住户", "Anxin · Resident"],
  "lang.switch": ["English", "中文"],
  "lang.switch.label": ["Switch to English", "切换到中文"],
  skip: ["跳到正文", "Skip to content"],
  loading: ["加载中…", "Loading…"],
  "nav.label": ["主导航", "Main navigation"],
  "nav.home": ["首页", "Home"],
  "nav.passes": ["通行证", "Passes"],
  "nav.messages": ["消息", "Messages"],
  "nav.me": ["我的", "Me"],
  back: ["返回", "Back"],
  cancel: ["取消", "Cancel"],
  close: ["关闭", "Close"],
  save: ["保存", "Save"],
  none: ["暂无", "Nothing yet"],
  "error.generic": ["出错了，请稍后再试", "Something went wrong; try again later"],
  "error.network": ["网络不通，请检查网络后重试", "No connection; check the network and retry"],
  "error.session": ["登录已过期，请重新登录", "Your session has ended; please log in again"],

  "login.title": ["欢迎使用安心", "Welcome to Anxin"],
  "login.lead": [
    "刷脸进门、远程开门、访客通行证、可视对讲，一个小程序搞定。",
    "Enter by face, open the gate from your phone, give visitors a pass, answer the intercom.",
  ],
  "login.button": ["微信一键登录", "Log in with WeChat"],
  "login.busy": ["正在登录…", "Logging in…"],
  "login.demo": [
    "演示环境：由模拟微信提供登录凭证。",
    "Demo: the login code comes from the fake WeChat.",
  ],
  "login.switch": ["换一个微信用户", "Use another WeChat user"],

  "home.title": ["我的家", "My home"],
  "home.households": ["我的房屋", "My homes"],
  "home.nohome": ["您还没有加入房屋。加入后，物业审核通过即可使用门禁。", "You have not joined a home yet. Once the property office approves, the doors are yours."],
  "home.join": ["加入房屋", "Join a home"],
  "home.face": ["人脸通行", "Face entry"],
  "home.face.none": ["尚未录入人脸", "No face enrolled"],
  "home.face.go": ["录入人脸", "Enroll my face"],
  "home.face.view": ["查看", "View"],
  "home.doors": ["我可以开的门", "Doors I may open"],
  "home.doors.none": ["暂无可开的门（房屋审核通过后显示）", "No doors yet (they appear once your home is approved)"],
  "home.invitations": ["邀请", "Invitations"],
  "invite.text": ["{community} {room} 邀请您以{role}身份加入", "{community} {room} invites you to join as {role}"],
  "invite.accept": ["接受", "Accept"],
  "invite.decline": ["拒绝", "Decline"],

  "door.open": ["开门", "Open"],
  "door.open.label": ["开门：{name}", "Open: {name}"],
  "door.opening": ["正在开门…", "Opening…"],
  "door.opened": ["门已打开", "The door opened"],
  "door.opened.ms": ["门已打开（{ms} 毫秒）", "The door opened ({ms} ms)"],
  "door.refused": ["未能开门：{why}", "Not opened: {why}"],
  "door.noanswer": ["门没有响应，请稍后再试或联系物业", "No answer from the door; try again or call the property office"],
  "door.online": ["在线", "online"],
  "door.offline": ["离线", "offline"],

  "join.title": ["加入房屋", "Join a home"],
  "join.community": ["小区", "Community"],
  "join.building": ["楼栋", "Building"],
  "join.building.hint": ["例如：1栋", "e.g. 1栋"],
  "join.unit": ["单元", "Unit"],
  "join.unit.hint": ["例如：1单元", "e.g. 1单元"],
  "join.search": ["查找房间", "Find rooms"],
  "join.rooms": ["选择房间", "Choose the room"],
  "join.norooms": ["没有找到房间，请核对楼栋和单元名称", "No rooms found; check the building and unit names"],
  "join.role": ["我的身份", "I am the"],
  "join.note": ["备注（选填，给物业看）", "Note for the property office (optional)"],
  "join.submit": ["提交申请", "Send the request"],
  "join.sent": ["申请已提交，等待物业审核", "Request sent; the property office will review it"],
  "join.mine": ["我的申请", "My requests"],
  "join.leave": ["退出该房屋", "Leave this home"],
  "join.leave.confirm": ["确认退出", "Yes, leave"],

  "role.owner": ["业主", "owner"],
  "role.family": ["家属", "family member"],
  "role.tenant": ["租户", "tenant"],
  "ms.pending": ["审核中", "pending review"],
  "ms.approved": ["已通过", "approved"],
  "ms.rejected": ["未通过", "rejected"],
  "ms.ended": ["已结束", "ended"],
  "ms.suspended": ["已暂停", "suspended"],

  "face.title": ["人脸录入", "Face enrollment"],
  "face.wait": ["房屋审核通过后即可录入人脸。", "You can enroll your face once your home is approved."],
  "face.community": ["用于小区", "For the community"],
  "face.consent": ["授权同意", "Consent"],
  "face.consent.lead": [
    "人脸信息属于敏感个人信息。请阅读以下说明，逐项勾选同意后才能录入；您可随时撤回，撤回后人脸将在各处删除。",
    "A face is sensitive personal information. Read each text and tick it to agree before enrolling; you can withdraw at any time, and the face is then deleted everywhere.",
  ],
  "face.consent.agree": ["我已阅读并同意《{title}》", "I have read and agree to “{title}”"],
  "face.consent.submit": ["同意并继续", "Agree and continue"],
  "face.consent.given": ["已同意：{titles}", "Agreed: {titles}"],
  "face.consent.pick": ["请至少勾选一项", "Tick at least one"],
  "face.consent.withdraw": ["撤回全部同意", "Withdraw all consent"],
  "face.consent.withdraw.confirm": ["确认撤回（人脸将被删除）", "Yes, withdraw (the face is deleted)"],
  "face.enroll": ["录入方式", "How to enroll"],
  "face.camera": ["用相机录入（动作验证）", "Use the camera (follow the moves)"],
  "face.file": ["从相册选择照片", "Choose a photo"],
  "face.file.hint": ["正脸、光线充足、只有本人、脸部占画面三分之一以上。", "Face the camera, good light, only you, your face filling a third of the picture."],
  "face.uploading": ["正在上传并检测…", "Uploading and checking…"],
  "face.sent": ["已提交，等待物业审核", "Sent; the property office will review it"],
  "face.refused": ["照片未通过：{why}", "Photo refused: {why}"],
  "face.refused.live": ["动作验证未通过：{why}", "The live check failed: {why}"],
  "face.mine": ["我的录入记录", "My enrollments"],
  "face.state.pending": ["审核中", "pending review"],
  "face.state.approved": ["已通过，可刷脸通行", "approved: enter by face"],
  "face.state.rejected": ["未通过", "rejected"],
  "face.state.removed": ["已删除", "removed"],
  "face.submitted": ["提交于 {at}", "sent {at}"],
  "face.liveness_required": [
    "本小区要求现场动作验证，请用相机录入。",
    "This community asks for the live check: use the camera.",
  ],
  "tip.face_too_dark": ["到明亮处，面向光源，不要背光。", "Move to a bright place and face the light; no light behind you."],
  "tip.face_too_bright": ["避开强光直射，到均匀光线下。", "Avoid direct sunlight; find even light."],
  "tip.face_no_face": ["确认照片里是您的正脸，没有被遮挡。", "Make sure the photo shows your face, uncovered."],
  "tip.face_multiple_faces": ["请单独拍摄，画面中只能有您一人。", "Take it alone: only you in the picture."],
  "tip.face_too_small": ["离近一些，让脸占画面三分之一以上。", "Come closer: your face should fill a third of the picture."],
  "tip.face_too_blurry": ["保持手机稳定，对焦后再拍。", "Hold the phone still and let it focus."],
  "tip.face_head_turned": ["正对镜头，不要侧脸。", "Look straight at the camera."],
  "tip.face_head_tilted": ["不要抬头或低头，平视镜头。", "Keep your head level."],
  "tip.face_eyes_not_visible": ["摘下墨镜或帽子，露出眼睛。", "Take off sunglasses or a hat; show your eyes."],
  "tip.liveness_frame_no_face": ["全程保持整张脸在画面中，光线充足。", "Keep your whole face in the picture throughout, in good light."],
  "tip.liveness_frame_multiple_faces": ["验证时画面中只能有您一人。", "Only you may be in the picture during the check."],
  "tip.liveness_not_frontal_start": ["开始时请正对镜头，等提示再转头。", "Start facing the camera; move only when asked."],
  "tip.liveness_action_not_done": ["按提示把动作做得明显一些。", "Make each move clearly when asked."],
  "tip.liveness_unexpected_action": ["只做提示的动作，按顺序完成。", "Do only the moves asked, in order."],
  "tip.liveness_different_person": ["请本人完成验证。", "The check must be done by you."],
  "cam.start": ["开始", "Start"],
  "cam.preview": ["相机预览", "Camera preview"],
  "cam.ready": ["请正对镜头，保持脸在框内", "Face the camera and keep your face in the frame"],
  "cam.turn_left": ["请向左转头", "Turn your head to the left"],
  "cam.turn_right": ["请向右转头", "Turn your head to the right"],
  "cam.nod": ["请点头", "Nod"],
  "cam.look_up": ["请抬头", "Look up"],
  "cam.done": ["完成，正在检测…", "Done; checking…"],
  "cam.insecure": [
    "浏览器只在安全连接（https 或本机地址）下开放相机，请改为从相册选择照片。",
    "Browsers open the camera only on a secure page (https or this machine's own address); choose a photo instead.",
  ],
  "cam.denied": ["无法使用相机：{why}。可改为从相册选择照片。", "The camera is not available: {why}. Choose a photo instead."],

  "passes.title": ["访客与快递通行证", "Visitor and delivery passes"],
  "passes.new.visitor": ["新建访客通行证", "New visitor pass"],
  "passes.new.delivery": ["新建快递通行证", "New delivery pass"],
  "passes.none": ["还没有通行证", "No passes yet"],
  "passes.nohome": ["房屋审核通过后才能邀请访客", "You can invite visitors once your home is approved"],
  "pass.kind.visitor": ["访客", "visitor"],
  "pass.kind.delivery": ["快递/外卖", "delivery"],
  "pass.state.active": ["有效", "active"],
  "pass.state.revoked": ["已作废", "revoked"],
  "pass.state.exhausted": ["已用完", "used up"],
  "pass.state.expired": ["已过期", "expired"],
  "pass.uses": ["已用 {uses}/{max} 次", "used {uses} of {max}"],
  "pass.until": ["有效至 {at}", "until {at}"],
  "pass.validity": ["有效期", "Valid"],
  "pass.window": ["{from} 至 {until}", "{from} to {until}"],
  "pass.new.title": ["新建通行证", "New pass"],
  "pass.kind": ["类型", "Kind"],
  "pass.name": ["访客姓名", "Visitor's name"],
  "pass.phone": ["访客手机（选填）", "Visitor's phone (optional)"],
  "pass.from": ["开始时间（不填为现在）", "From (empty: now)"],
  "pass.until.label": ["结束时间（不填为默认时长）", "Until (empty: the default)"],
  "pass.max": ["可用次数", "Number of uses"],
  "pass.plate": ["车牌（选填，开车来访时）", "Plate (optional, if they drive)"],
  "pass.bounds.visitor": ["访客证最长 7 天，1–20 次；默认 24 小时、1 次。", "Visitor passes: up to 7 days and 1–20 uses; default 24 hours, once."],
  "pass.bounds.delivery": ["快递证最长 2 小时，1–10 次；默认 30 分钟、3 次。", "Delivery passes: up to 2 hours and 1–10 uses; default 30 minutes, 3 uses."],
  "pass.create": ["生成通行证", "Create the pass"],
  "pass.qr": ["通行二维码：{name}", "Pass QR code: {name}"],
  "pass.share": ["分享给访客", "Share with the visitor"],
  "pass.link": ["访客链接", "Visitor's link"],
  "pass.copy": ["复制链接", "Copy the link"],
  "pass.copied": ["已复制", "Copied"],
  "pass.share.native": ["发送给…", "Send to…"],
  "pass.share.text": ["{community}访客通行证：{url}", "Visitor pass: {url}"],
  "pass.details": ["详情", "Details"],
  "pass.doors": ["可开的门", "Doors"],
  "pass.doors.n": ["{n} 个门", "{n} door(s)"],
  "pass.doors.all": ["小区大门", "The community's gates"],
  "pass.state": ["状态", "State"],
  "pass.revoke": ["作废通行证", "Revoke the pass"],
  "pass.revoke.confirm": ["确认作废", "Yes, revoke it"],
  "pass.revoked": ["已作废，各门禁将拒绝此码", "Revoked; every gate now refuses this code"],

  "call.title": ["有访客呼叫", "Someone is calling"],
  "call.where": ["{door} 呼叫 {room}", "{door} is calling {room}"],
  "call.accept": ["接听并开门", "Answer and open"],
  "call.decline": ["拒绝", "Decline"],
  "call.opening": ["正在开门…", "Opening…"],
  "call.opened": ["门已打开", "The door opened"],
  "call.declined": ["已拒绝", "Declined"],
  "call.ended": ["呼叫已结束", "The call has ended"],
  "call.answered.other": ["家人已接听", "Someone else in the household answered"],

  "household.title": ["家庭与车辆", "Household and vehicles"],
  "household.none": ["暂无已通过审核的房屋", "No approved home yet"],
  "household.members": ["家庭成员", "Members"],
  "household.code": ["家庭开门密码", "Household door code"],
  "household.code.lead": ["访客在单元门口输入房号和密码即可进门。密码只显示一次，请妥善告知。", "Visitors key the room and this code at the door panel. A new code is shown once; pass it on with care."],
  "household.code.new": ["随机生成新密码", "Generate a new code"],
  "household.code.shown": ["新密码：{code}", "New code: {code}"],
  "household.code.set": ["设置密码（6–8 位数字）", "Set a code (6–8 digits)"],
  "household.code.save": ["保存密码", "Save the code"],
  "household.code.saved": ["密码已更新", "The code is updated"],
  "household.code.clear": ["停用密码", "Turn the code off"],
  "household.code.cleared": ["密码已停用", "The code is off"],
  "household.vehicles": ["车辆", "Vehicles"],
  "household.plate": ["车牌号", "Plate"],
  "household.plate.add": ["添加车辆", "Add the vehicle"],
  "household.plate.remove": ["删除 {plate}", "Remove {plate}"],

  "messages.title": ["消息", "Messages"],
  "messages.readall": ["全部标为已读", "Mark all read"],
  "messages.unread": ["未读", "unread"],
  "messages.read": ["标为已读", "Mark read"],
  "messages.read.label": ["标为已读：{title}", "Mark read: {title}"],
  "messages.settings": ["提醒设置", "Which messages reach me"],
  "messages.settings.lead": [
    "关闭后不再推送微信消息和实时提醒，消息仍保存在此列表中。安全和账号相关的消息不能关闭。",
    "Turned off: no WeChat message and no live alert; the message is still kept in this list. Safety and account messages cannot be turned off.",
  ],
  "messages.mandatory": ["（必收）", "(always sent)"],
  "messages.saved": ["已保存", "Saved"],
  "messages.live": ["实时连接", "Live"],
  "messages.offline": ["实时连接已断开，正在重连…", "Live updates lost; reconnecting…"],

  "me.title": ["我的", "Me"],
  "me.phone": ["手机号", "Phone"],
  "me.phone.none": ["未绑定", "not linked"],
  "me.phone.bind": ["绑定微信手机号", "Link my WeChat phone number"],
  "me.phone.sheet": ["模拟微信：允许获取手机号", "Fake WeChat: allow access to the phone number"],
  "me.phone.number": ["微信绑定的手机号", "The phone number WeChat holds"],
  "me.phone.allow": ["允许", "Allow"],
  "me.phone.done": ["手机号已绑定", "Phone number linked"],
  "me.household": ["家庭与车辆", "Household and vehicles"],
  "me.face": ["人脸录入", "Face enrollment"],
  "me.join": ["加入房屋", "Join a home"],
  "me.language": ["语言", "Language"],
  "me.export": ["导出我的数据", "Export my data"],
  "me.export.lead": ["按《个人信息保护法》，您可随时获取我们保存的关于您的全部信息。", "Under the PIPL you may have everything we hold about you, at any time."],
  "me.export.ready": ["已生成（{at}），点击下载", "Ready ({at}); download it"],
  "me.export.file": ["下载 JSON 文件", "Download the JSON file"],
  "me.delete": ["注销账号", "Delete my account"],
  "me.delete.lead": [
    "注销后将退出所有房屋，作废您的通行证、删除人脸及车辆登记，无法恢复。",
    "Deleting leaves every home, revokes your passes, deletes your face and vehicles. It cannot be undone.",
  ],
  "me.delete.confirm": ["确认注销", "Yes, delete my account"],
  "me.logout": ["退出登录", "Log out"],
  "me.name": ["姓名", "Name"],
};

export function lang() {
  const stored = localStorage.getItem(KEY);
  return stored === "en" ? "en" : "zh";
}

export function setLang(value) {
  localStorage.setItem(KEY, value === "en" ? "en" : "zh");
  document.documentElement.lang = value === "en" ? "en" : "zh-CN";
}

export function t(key, vars) {
  const pair = TEXTS[key];
  let text = pair ? pair[lang() === "en" ? 1 : 0] : key;
  if (vars) {
    for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
  }
  return text;
}

export function has(key) {
  return key in TEXTS;
}

// An API error in the reader's language (the API always carries both).
export function errorText(err) {
  if (err && err.body && err.body.error) {
    const e = err.body.error;
    return (lang() === "en" ? e.message_en : e.message_zh) || e.message || t("error.generic");
  }
  if (err && err.network) return t("error.network");
  return t("error.generic");
}
